//! Starts the `sequent-acquirer-sim` binary on an ephemeral port and drives it over ISO 8583:
//! sign-on, approve, decline, limit, partial, a request that gets no answer and its reversal, a
//! retransmission, outages switched at run time, and the clearing file.
//!
//! No timed assertion: "no answer" is proved by ordering — the simulator answers a connection's
//! requests in order, so when an echo sent after request X is answered first, X got no answer.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use sequent_iso8583::{
    AcquirerClient, ClientError, Message, Mti, PanField, PrivateData, ResponseCode, network,
    processing,
};

/// Long enough never to fire on a healthy run; only bounds a hang.
const PATIENCE: Duration = Duration::from_secs(30);
/// For "nothing comes": a short wait whose expiry is the expected outcome (its passing is never
/// what makes the test pass: an ordering check follows each).
const BRIEF: Duration = Duration::from_millis(200);

const CONFIG: &str = r#"
name = "acq-t"
seed = 3
latency_ms = 1
jitter_ms = 2
decline_bins = [[400000, 400099]]
limit_minor = 100000
partial_over_minor = 50000
silent_amounts = [1313]
"#;

struct Sim {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: String,
    admin: String,
}

impl Sim {
    fn start(config: &str, dir: &Path) -> Sim {
        let config_path = dir.join("sim.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sequent-acquirer-sim"))
            .arg("--config")
            .arg(&config_path)
            .args([
                "--admin-listen",
                "127.0.0.1:0",
                "--business-date",
                "2026-11-24",
            ])
            .arg("--clearing-file")
            .arg(dir.join("eod.csv"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening: ")
            .expect("listening line")
            .to_owned();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        let admin = line
            .trim()
            .strip_prefix("admin: ")
            .expect("admin line")
            .to_owned();
        Sim {
            child,
            stdin,
            stdout,
            addr,
            admin,
        }
    }

    /// Sends a control line on stdin and returns the reply line.
    fn control(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    /// Sends a control line on the admin port.
    fn admin(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(&self.admin).unwrap();
        writeln!(stream, "{command}").unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    fn client(&self) -> AcquirerClient {
        AcquirerClient::connect(&self.addr).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn network_request(stan: &str, code: &str) -> Message {
    let mut m = Message::new(Mti::NetworkRequest);
    m.set(7, "1124053000")
        .unwrap()
        .set(11, stan)
        .unwrap()
        .set(70, code)
        .unwrap();
    m
}

fn auth(mti: Mti, stan: &str, rrn: &str, pan: &str, amount_minor: u64) -> Message {
    let mut m = Message::new(mti);
    m.set_pan(PanField::new(pan).unwrap());
    m.set(3, processing::PURCHASE).unwrap();
    m.set(4, format!("{amount_minor:012}")).unwrap();
    m.set(7, "1124053800").unwrap();
    m.set(11, stan).unwrap();
    m.set(32, "12345").unwrap();
    m.set(37, rrn).unwrap();
    m.set(41, "TERM0001").unwrap();
    m.set(42, "MERCHANT0000042").unwrap();
    let private = PrivateData {
        payment_id: Some(format!("pay-{stan}")),
        ..PrivateData::default()
    };
    m.set(48, private.encode().unwrap().unwrap()).unwrap();
    m.set(49, "826").unwrap();
    m
}

fn recv(client: &mut AcquirerClient) -> Message {
    client
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("an answer within the patience bound")
}

fn code(m: &Message) -> ResponseCode {
    ResponseCode::from_code(m.get_str(39).unwrap()).unwrap()
}

fn sign_on(client: &mut AcquirerClient, stan: &str) {
    client
        .send(&network_request(stan, network::SIGN_ON))
        .unwrap();
    let answer = recv(client);
    assert_eq!(answer.mti(), Mti::NetworkResponse);
    assert_eq!(code(&answer), ResponseCode::Approved);
}

/// Sends an echo and asserts it is the next message: everything sent before it went unanswered.
fn assert_nothing_pending(client: &mut AcquirerClient, stan: &str) {
    client.send(&network_request(stan, network::ECHO)).unwrap();
    let next = recv(client);
    assert_eq!(
        next.mti(),
        Mti::NetworkResponse,
        "an earlier request was answered: {next:?}"
    );
    assert_eq!(next.get_str(11), Some(stan));
}

const VISA: &str = "4111111111111111";
const DECLINED_BIN: &str = "4000000000000002";

#[test]
fn the_simulated_acquirer_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(CONFIG, dir.path());
    let mut client = sim.client();

    // Before sign-on: 91.
    client
        .send(&auth(
            Mti::AuthorisationRequest,
            "000001",
            "000000000001",
            VISA,
            100,
        ))
        .unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::IssuerUnavailable);
    sign_on(&mut client, "000002");

    // Approve.
    let approve = auth(
        Mti::AuthorisationRequest,
        "000003",
        "000000000003",
        VISA,
        12550,
    );
    client.send(&approve).unwrap();
    let approved = recv(&mut client);
    assert_eq!(approved.mti(), Mti::AuthorisationResponse);
    assert_eq!(code(&approved), ResponseCode::Approved);
    assert_eq!(approved.get_str(37), Some("000000000003"));
    assert!(approved.get_str(38).is_some());
    assert!(approved.pan().is_none(), "the PAN is not echoed");

    // Decline by BIN, over the limit, partial.
    client
        .send(&auth(
            Mti::AuthorisationRequest,
            "000004",
            "000000000004",
            DECLINED_BIN,
            500,
        ))
        .unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::DoNotHonour);
    client
        .send(&auth(
            Mti::AuthorisationRequest,
            "000005",
            "000000000005",
            VISA,
            200_000,
        ))
        .unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::InsufficientFunds);
    client
        .send(&auth(
            Mti::AuthorisationRequest,
            "000006",
            "000000000006",
            VISA,
            70_000,
        ))
        .unwrap();
    let partial = recv(&mut client);
    assert_eq!(code(&partial), ResponseCode::PartialApproval);
    assert_eq!(partial.get_str(54), Some("0002826D000000050000"));

    // No answer, proved by the echo overtaking it; then its reversal.
    let silent = auth(
        Mti::AuthorisationRequest,
        "000007",
        "000000000007",
        VISA,
        1313,
    );
    client.send(&silent).unwrap();
    assert_nothing_pending(&mut client, "000008");
    let reversal = Message::reversal_of(&silent, "000009", "1124053830").unwrap();
    client.send(&reversal).unwrap();
    let reversed = recv(&mut client);
    assert_eq!(reversed.mti(), Mti::ReversalResponse);
    assert_eq!(code(&reversed), ResponseCode::Approved);
    // A reversal of something never approved: 25.
    let never = auth(Mti::AuthorisationRequest, "000010", "000000000010", VISA, 5);
    client
        .send(&Message::reversal_of(&never, "000011", "1124053830").unwrap())
        .unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::OriginalNotFound);

    // Retransmission of the approved 0100: the same answer, not a second authorisation.
    client.send(&approve).unwrap();
    assert_eq!(recv(&mut client), approved);
    assert!(sim.control("stats").contains("duplicates 1"), "stats");

    // Outage "drop", switched on stdin: the request vanishes (never processed, never recorded).
    assert_eq!(sim.control("outage drop"), "ok outage drop");
    client
        .send(&auth(
            Mti::AuthorisationRequest,
            "000012",
            "000000000012",
            VISA,
            777,
        ))
        .unwrap();
    assert!(client.recv_timeout(BRIEF).unwrap().is_none());
    assert_eq!(sim.control("outage off"), "ok outage off");
    assert_nothing_pending(&mut client, "000013");

    // Outage "refuse", switched on the admin port: the open connection is closed, and so is a
    // new one.
    assert_eq!(sim.admin("outage refuse"), "ok outage refuse");
    match client.recv_timeout(PATIENCE) {
        Err(ClientError::Closed) | Err(ClientError::Io(_)) => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    let mut refused = sim.client();
    match refused.recv_timeout(PATIENCE) {
        Err(ClientError::Closed) | Err(ClientError::Io(_)) => {}
        other => panic!("expected the new connection closed, got {other:?}"),
    }
    assert_eq!(sim.admin("outage auto"), "ok outage auto");
    let mut client = sim.client();
    sign_on(&mut client, "000014");
    // A capture (0200 naming the RRN of the approved 0100) and a refund.
    client
        .send(&auth(
            Mti::FinancialRequest,
            "000015",
            "000000000003",
            VISA,
            12550,
        ))
        .unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::Approved);
    let mut refund = auth(Mti::FinancialRequest, "000016", "000000000016", VISA, 300);
    refund.set(3, processing::REFUND).unwrap();
    client.send(&refund).unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::Approved);

    // The clearing file.
    let path = dir.path().join("eod.csv");
    let reply = sim.admin("clearing");
    assert_eq!(reply, format!("ok clearing {} rows 6", path.display()));
    let csv = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        csv,
        "acquirer,rrn,payment_id,amount_minor,currency,type,date\n\
         acq-t,000000000003,pay-000003,12550,826,auth,2026-11-24\n\
         acq-t,000000000006,pay-000006,50000,826,auth,2026-11-24\n\
         acq-t,000000000007,pay-000007,1313,826,auth,2026-11-24\n\
         acq-t,000000000007,pay-000007,1313,826,reversal,2026-11-24\n\
         acq-t,000000000003,pay-000015,12550,826,capture,2026-11-24\n\
         acq-t,000000000016,pay-000016,300,826,refund,2026-11-24\n"
    );
    // Nothing in the clearing file or on stdout shows a PAN.
    assert!(!csv.contains(VISA));

    // Shutdown writes the file again and exits 0.
    let other = dir.path().join("other.csv");
    assert!(
        sim.control(&format!("clearing {}", other.display()))
            .starts_with("ok clearing")
    );
    assert_eq!(std::fs::read_to_string(&other).unwrap(), csv);
    let reply = sim.control("shutdown");
    assert_eq!(
        reply,
        format!("ok shutdown clearing {} rows 6", path.display())
    );
    assert!(sim.child.wait().unwrap().success());
}

#[test]
fn scheduled_outage_and_clearing_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    // Refusing from start-up for ten minutes: only the operator's `outage off` lets anyone in.
    let config = format!(
        "{CONFIG}\n[[outage]]\nfrom_ms = 0\nto_ms = 600000\nmode = \"refuse\"\n\n\
         [mismatch]\nseed = 5\nduplicate_rate = 1.0\nalter_rate = 1.0\n"
    );
    let mut sim = Sim::start(&config, dir.path());
    let mut refused = sim.client();
    assert!(matches!(
        refused.recv_timeout(PATIENCE),
        Err(ClientError::Closed) | Err(ClientError::Io(_))
    ));
    assert_eq!(sim.control("outage off"), "ok outage off");
    let mut client = sim.client();
    sign_on(&mut client, "000001");
    client
        .send(&auth(
            Mti::AuthorisationRequest,
            "000002",
            "000000000002",
            VISA,
            1000,
        ))
        .unwrap();
    assert_eq!(code(&recv(&mut client)), ResponseCode::Approved);
    let reply = sim.control("clearing");
    assert!(reply.ends_with("rows 2"), "{reply}");
    let csv = std::fs::read_to_string(dir.path().join("eod.csv")).unwrap();
    // Every row altered by one minor unit and written twice.
    assert_eq!(
        csv,
        "acquirer,rrn,payment_id,amount_minor,currency,type,date\n\
         acq-t,000000000002,pay-000002,1001,826,auth,2026-11-24\n\
         acq-t,000000000002,pay-000002,1001,826,auth,2026-11-24\n"
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "error_rate = 3.0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sequent-acquirer-sim"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error_rate"));
    let help = Command::new(env!("CARGO_BIN_EXE_sequent-acquirer-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("SIMULATED"));
}
