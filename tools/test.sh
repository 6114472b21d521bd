#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration, property and doc tests, then the loom
# models of the ring (a separate build with `--cfg loom`, in its own target directory).
# Needs only cargo; crates come from crates.io. Usage: bash tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== AF_XDP receive (feature af-xdp; over a veth pair in a namespace, skipped with the reason when not root)"
cargo test --locked -p sequent-feed --features af-xdp --test af_xdp

echo "== loom models of sequent-ring (engine/ring/tests/loom.rs)"
RUSTFLAGS="--cfg loom" cargo test --locked -p sequent-ring --test loom --release --target-dir target/loom
