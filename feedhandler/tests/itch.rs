//! The ITCH 5.0 sample (`engine/matching/tests/data/itch`): counts by type match its README
//! (S 6, R 3, H 3, A 4,997, F 3, E 198, X 45, D 1,745, U 12, P 5,000; 12,012 in total), the book
//! builder stays consistent and deterministic over it, and bad input is an error naming the offset.

use sequent_feed::book::Books;
use sequent_feed::itch::{self, ItchError, ItchReader};

const SAMPLE: &[u8] =
    include_bytes!("../../engine/matching/tests/data/itch/ex20101224.TEST_ITCH_50");

#[test]
fn sample_counts_match_the_readme() {
    let mut books = Books::new();
    let counts = itch::replay(SAMPLE, &mut books).unwrap();
    let expected = [
        ('S', 6),
        ('R', 3),
        ('H', 3),
        ('A', 4_997),
        ('F', 3),
        ('E', 198),
        ('X', 45),
        ('D', 1_745),
        ('U', 12),
        ('P', 5_000),
    ];
    assert_eq!(counts.by_type, expected.into_iter().collect());
    assert_eq!(counts.total, 12_012);
    assert_eq!(books.symbols().len(), 3);
    books.check_invariants().unwrap();
    // The sample is a window of a longer day: 117 messages name orders it never added
    // (engine/matching/tests/itch.rs counts the same 117).
    let unknown: u64 = books.symbols().values().map(|b| b.stats.unknown_refs).sum();
    assert_eq!(unknown, 117);
    let mut again = Books::new();
    itch::replay(SAMPLE, &mut again).unwrap();
    assert_eq!(books.digest(), again.digest());
}

#[test]
fn snapshot_of_the_sample_rebuilds_the_same_books() {
    let mut books = Books::new();
    itch::replay(SAMPLE, &mut books).unwrap();
    let mut snapshot = Vec::new();
    books.snapshot(12_012, &mut snapshot);
    let (rebuilt, last_seq) = Books::apply_snapshot(&snapshot).unwrap();
    assert_eq!(last_seq, 12_012);
    assert_eq!(rebuilt.digest(), books.digest());
    rebuilt.check_invariants().unwrap();
}

#[test]
fn unknown_types_and_truncation_name_the_offset() {
    let first_len = 2 + itch::message_len(SAMPLE[2]).unwrap();
    let mut bad = SAMPLE[..first_len * 2].to_vec();
    bad[first_len + 2] = b'!';
    let result: Result<Vec<_>, _> = ItchReader::new(&bad).collect();
    assert_eq!(
        result.unwrap_err(),
        ItchError::UnknownType {
            offset: first_len + 2,
            kind: b'!'
        }
    );
    let result: Result<Vec<_>, _> = ItchReader::new(&SAMPLE[..first_len + 5]).collect();
    assert_eq!(
        result.unwrap_err(),
        ItchError::Truncated {
            offset: first_len + 2
        }
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_itch_reader(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        for item in ItchReader::new(&bytes) {
            if item.is_err() {
                break;
            }
        }
    }
}
