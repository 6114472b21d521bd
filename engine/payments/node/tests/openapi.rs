//! `docs/payments-api.yaml` and the router agree: every documented path and method is served,
//! and nothing served is undocumented. (That each served route answers over a socket is checked
//! in `tests/gateway.rs`.)

use std::collections::BTreeSet;

#[test]
fn every_documented_route_is_served_and_nothing_else() {
    let text = include_str!("../../../../docs/payments-api.yaml");
    let mut documented = BTreeSet::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in text.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if !in_paths || line.trim().is_empty() {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ") {
            let m = m.trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete"].contains(&m) {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = sequent_payments_node::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert!(documented.len() >= 10, "parsed {documented:?}");
    assert_eq!(documented, served);
}
