//! The README's main command, `sequent demo`, runs end to end (small sizes so CI stays quick):
//! the ring pipeline with its checks, then the engine over loopback TCP with its journal check and
//! the restart that must recover the same digest.

use std::process::Command;

#[test]
fn the_demo_runs_and_checks_itself() {
    let output = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args([
            "demo",
            "--burst-events",
            "20000",
            "--latency-events",
            "20000",
            "--rate",
            "100000",
            "--engine-seconds",
            "1",
            "--clients",
            "2",
            "--client-rate",
            "500",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checks: every handler saw"), "{stdout}");
    assert!(stdout.contains("acknowledged"), "{stdout}");
    assert!(
        stdout.contains("book digest") && stdout.contains("equal to the engine's"),
        "{stdout}"
    );
    assert!(
        stdout.contains("verifies (checksums, chain, seals)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("equal to the one it stopped with"),
        "{stdout}"
    );
}
