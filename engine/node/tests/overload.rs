//! Overload: clients that flood orders and never read their replies are cut off (the engine
//! never grows a buffer for them) while the input ring is full. Cutting one off sequences its
//! disconnection from inside the gateway's wait for ring space; that must neither reuse the
//! sequence of the input being published (the journal stage would halt the engine: "the journal's
//! sequence and the gateway's disagree", found by `sequent-bench report` at 500K orders/s) nor
//! disturb the well-behaved client.

use std::io::Write;
use std::time::Duration;

use sequent_node::client::{Client, limit_order};
use sequent_node::config::EngineConfig;
use sequent_node::engine::Engine;
use sequent_node::protocol::{ClientMessage, EngineMessage, FRAME_LEN_MAX, encode_client};

#[test]
fn flooding_clients_that_never_read_are_cut_off_without_halting_the_engine() {
    let dir = std::env::temp_dir().join(format!("sequent-overload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = EngineConfig::loopback(&dir, true);
    config.rings.input_slots = 64;
    config.rings.output_slots = 64;
    let engine = Engine::start(&config).unwrap();

    // Frames for 40,000 orders per flooder, written as fast as the socket takes them.
    let flood = |session: u32| {
        let address = engine.address();
        std::thread::spawn(move || {
            let mut client = Client::connect(address, Duration::from_secs(20)).unwrap();
            client.login(session, false).unwrap();
            let mut bytes = Vec::with_capacity(40_000 * 64);
            let mut frame = [0u8; FRAME_LEN_MAX];
            for id in 1..=40_000u32 {
                let order = limit_order(id, session, "ABC", id % 2 == 0, 100, 1);
                let len = encode_client(&mut frame, id, &ClientMessage::NewOrder(order));
                bytes.extend_from_slice(&frame[..len]);
            }
            // The engine cuts this client off at some point: the write then fails.
            let _ = client.send_raw(&bytes);
            std::thread::sleep(Duration::from_millis(300));
        })
    };
    let flooders: Vec<_> = (1..=3).map(flood).collect();
    for flooder in flooders {
        flooder.join().unwrap();
    }
    // The engine still serves, and a polite client is answered.
    let mut polite = Client::connect(engine.address(), Duration::from_secs(20)).unwrap();
    polite.login(9, false).unwrap();
    polite.new_limit(1, 9, "XYZ", true, 50, 1).unwrap();
    loop {
        if let EngineMessage::Accepted(_) = polite.receive().unwrap().message {
            break;
        }
    }
    let _ = std::io::stdout().flush();
    drop(polite);
    let (inputs, _) = engine.shutdown_with_digest().unwrap();
    assert!(
        inputs > 1_000,
        "the flood did not reach the engine: {inputs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
