#!/bin/sh
# Soak (issue 13): MINUTES (default 30, or SOAK_MINUTES) of numbered traffic against InspIRCd +
# Anope, Synapse and mosquitto started on free loopback ports (as the integration tests do;
# scripts/test installs them): the bridge both ways, MQTT through a relay, a meeting, commands,
# /search and /media, the IRC server killed at one third and Synapse restarted at two thirds.
# Prints a table of the bot's memory, descriptors, outbox and store size a minute, the memory
# slope after warm-up, and exits 1 if any numbered message was lost or doubled.
#
#   benches/soak.sh [MINUTES]
#
# The bot is the debug build unless PROFILE=release; the soak driver is always debug. The bot
# sends to Matrix one message at a time, each waiting for Synapse, whose SQLite database takes
# one request at a time: on a disk shared with compilers a send takes about 0.3 s there, too
# slow for the 5 a second the bridge offers. `TMPDIR=/dev/shm nice -n -10 benches/soak.sh` puts
# the servers' and the bot's directories in memory and ahead of the compilers.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
profile=${PROFILE:-dev}
target=${CARGO_TARGET_DIR:-$here/target}
cargo build --quiet --profile "$profile" --bin sigbot
cargo build --quiet --example soak
case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
# A copy, so that another build in the same target directory cannot replace it mid-run.
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cp "$target/$dir/sigbot" "$bin"
chmod +x "$bin"
SIGBOT_BIN=$bin "$target/debug/examples/soak" "$@"
