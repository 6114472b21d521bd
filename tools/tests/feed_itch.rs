//! `sequent feed itch FILE`: the counts, books and digest of the ITCH sample; a file with an
//! unknown message type fails with one line naming the offset, exit 1, no panic.

use std::process::Command;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../engine/matching/tests/data/itch/ex20101224.TEST_ITCH_50"
);

#[test]
fn replays_the_sample() {
    let out = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["feed", "itch", SAMPLE, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["messages"], 12_012);
    for (kind, n) in [
        ("S", 6),
        ("R", 3),
        ("H", 3),
        ("A", 4_997),
        ("F", 3),
        ("E", 198),
        ("X", 45),
        ("D", 1_745),
        ("U", 12),
        ("P", 5_000),
    ] {
        assert_eq!(v["by_type"][kind], n, "{kind}");
    }
    assert_eq!(v["symbols"].as_array().unwrap().len(), 3);
    assert_eq!(v["symbols"][0]["symbol"], "ALC");
    let text = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["feed", "itch", SAMPLE])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with(
        "12012 messages: A 4997, D 1745, E 198, F 3, H 3, P 5000, R 3, S 6, U 12, X 45"
    ));
    assert!(text.contains(&format!("digest {}", v["digest"].as_str().unwrap())));
}

#[test]
fn unknown_type_names_the_offset() {
    let mut data = std::fs::read(SAMPLE).unwrap();
    // The first message is S (12 bytes after its 2-byte prefix): corrupt the second's type.
    data[2 + 12 + 2] = b'!';
    let dir = std::env::temp_dir().join(format!("sequent-feed-itch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.itch");
    std::fs::write(&path, &data).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(["feed", "itch", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unknown ITCH message type 0x21 at offset 16"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}
