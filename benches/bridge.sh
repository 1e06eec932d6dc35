#!/bin/sh
# Bridge benchmark (issue 8): latency the bot adds between IRC and Matrix (p50/p99 at each
# offered rate, beside each server's own delivery time), Matrix -> IRC throughput against the
# configured IRC rate, and resident memory with 1 and with 50 bridges. Starts InspIRCd + Anope
# and Synapse on free loopback ports (as the integration tests do; scripts/test installs them).
#
#   benches/bridge.sh [--messages 1000] [--rates 5,20] [--bot-rate 10] [--bot-burst 20] [--bridges 50]
#
# The bot measured is the debug build unless PROFILE=release (a release build of matrix-sdk
# takes about 20 minutes on the 2-core machines here); the benchmark driver is always debug.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
profile=${PROFILE:-dev}
target=${CARGO_TARGET_DIR:-$here/target}
cargo build --quiet --profile "$profile" --bin sigbot
cargo build --quiet --example bridge_bench
case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
# A copy, so that another build in the same target directory cannot replace it mid-run.
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cp "$target/$dir/sigbot" "$bin"
chmod +x "$bin"
SIGBOT_BIN=$bin "$target/debug/examples/bridge_bench" "$@"
