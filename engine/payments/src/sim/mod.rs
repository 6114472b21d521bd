//! Simulators of external parties, for tests and the deterministic simulator. Nothing in the
//! engine uses them; they stand in for systems we do not run.

pub mod acs;
