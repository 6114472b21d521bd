//! `sequent-bench engine` on a tiny load: every target answers every order, and the rows carry
//! sane figures.

use sequent_bench::engine::{EngineBenchConfig, run};

#[test]
fn a_tiny_engine_run_answers_every_order() {
    let rows = run(
        &EngineBenchConfig {
            sessions: 2,
            rates: vec![2_000],
            seconds: 0.3,
            dir: std::env::temp_dir(),
        },
        |_| {},
    )
    .unwrap();
    let targets: Vec<&str> = rows.iter().map(|r| r.target).collect();
    assert_eq!(targets, ["echo", "engine-durable", "engine-match"]);
    for row in &rows {
        assert!(row.sent > 100, "{row:?}");
        assert_eq!(row.acked, row.sent, "{row:?}");
        assert!(
            row.p50_ns > 0 && row.p50_ns <= row.p99_ns && row.p99_ns <= row.max_ns,
            "{row:?}"
        );
    }
    assert!(rows[1].ratio_p99_vs_echo.is_some());
}
