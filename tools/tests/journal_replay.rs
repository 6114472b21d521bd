//! `sequent journal replay DIR --config FILE`: an engine's journal, replayed on "another machine"
//! (another process), gives the digest the engine itself reported when it stopped, at the end and
//! at any earlier sequence.

use std::process::Command;
use std::time::Duration;

use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::engine::{Engine, replay_journal};
use sequent_node::protocol::EngineMessage;

const CONFIG: &str = r#"
symbols = ["ABC", "XYZ"]
sessions_max = 4
[venue]
orders_max = 4096
levels_max = 1024
levels_per_side_max = 512
accounts_max = 4
ids_max = 4096
[journal]
dir = "ignored-by-replay"
[gateway]
listen = "127.0.0.1:0"
"#;

fn replay(dir: &std::path::Path, config: &std::path::Path, until: Option<u64>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sequent"));
    command
        .args(["journal", "replay"])
        .arg(dir)
        .arg("--config")
        .arg(config)
        .arg("--json");
    if let Some(until) = until {
        command.arg("--until").arg(until.to_string());
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn replay_prints_the_digest_the_engine_stopped_with() {
    let dir = std::env::temp_dir().join(format!("sequent-journal-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("engine.toml");
    std::fs::write(&config_path, CONFIG).unwrap();
    let mut config = EngineConfig::parse(CONFIG).unwrap();
    config.journal.dir = dir.join("journal");
    let engine = Engine::start(&config).unwrap();
    let mut client = Client::connect(engine.address(), Duration::from_secs(10)).unwrap();
    client.login(1, false).unwrap();
    for id in 1..=60u32 {
        let symbol = if id % 2 == 0 { "ABC" } else { "XYZ" };
        client
            .new_limit(id, 1, symbol, id % 3 == 0, 100 + i64::from(id % 5), 2)
            .unwrap();
    }
    let mut answered = 0;
    while answered < 60 {
        if let EngineMessage::Accepted(_) | EngineMessage::Rejected(_) =
            client.receive().unwrap().message
        {
            answered += 1;
        }
    }
    drop(client);
    std::thread::sleep(Duration::from_millis(50));
    let (_, digest) = engine.shutdown_with_digest().unwrap();

    let text = replay(&dir.join("journal"), &config_path, None);
    assert!(
        text.contains(&format!("\"digest\":\"{digest:016x}\"")),
        "{text} does not carry the engine's digest {digest:016x}"
    );
    assert!(text.contains("\"term\":1"), "{text}");
    // At an earlier sequence: the same digest as the library's replay there, and a different one
    // from the end (orders were still arriving).
    let earlier = replay_journal(&config, &dir.join("journal"), Some(30)).unwrap();
    let text = replay(&dir.join("journal"), &config_path, Some(30));
    assert!(
        text.contains(&format!("\"digest\":\"{:016x}\"", earlier.digest)),
        "{text}"
    );
    assert!(text.contains("\"sequence\":30"), "{text}");
    assert_ne!(earlier.digest, digest);
    let _ = std::fs::remove_dir_all(&dir);
}
