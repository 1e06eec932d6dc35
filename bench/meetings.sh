#!/bin/sh
# Meetings benchmark (issue 5): renders the 10,000-line synthetic meeting and replays it
# live through the core with the journal. The sigbot crate is built optimized; its
# dependencies keep the dev profile, so this shares compiled dependencies with `cargo test`.
set -eu
n=${1:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
gen=${GEN_MEETING_LOG:-$here/../shared/bench/gen_meeting_log.py}
log=$(mktemp --suffix=.log.txt)
trap 'rm -f "$log"' EXIT
python3 "$gen" "$n" "$log"
cd "$here"
cargo run --quiet --example meetings_bench \
  --config 'profile.dev.package.sigbot.opt-level=3' -- "$log" "${RUNS:-15}"
