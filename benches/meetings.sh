#!/bin/sh
# Meetings benchmark (issue 5) on a meeting of N lines (default 10,000): renders it and replays
# it live through the core with the journal, built with the bench (release) profile.
# `cargo bench --bench meetings` alone does the same for 10,000 lines.
set -eu
n=${1:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
gen=${GEN_MEETING_LOG:-$here/benches/gen_meeting_log.py}
log=$(mktemp --suffix=.log.txt)
trap 'rm -f "$log"' EXIT
python3 "$gen" "$n" "$log"
cd "$here"
cargo bench --quiet --bench meetings -- "$log" "${RUNS:-15}"
