#!/bin/sh
# Peer benchmark (issue 16): sigbot side by side with the programs users know, in one run on
# the same servers, printed as one table.
#
#   benches/peers.sh [--messages 1000] [--rates 5,20,50] [--bridges 50] ...
#
# - Bridge: Heisenbridge (PyPI `heisenbridge`, as a Synapse appservice) and then sigbot relay
#   the same channel and room of the harness's InspIRCd and Synapse under the same numbered
#   load (the `peers_bench` example: latency p50/p99 and delivered rate per path and rate,
#   beside the servers' own client-to-client times; memory idle with 1 and with 50 rooms).
# - Minutes: the same meeting log (benches/gen_meeting_log.py, MEETING_LINES lines, default
#   10,000) rendered RUNS times (default 5) by the MeetBot peer (PyPI `hcoop-meetbot`, its
#   logic package driven by benches/meetbot_peer.py) and by `sigbot meetings render`; the
#   median wall time of each whole process.
#
# The peers are installed from PyPI into a venv of their own ($PEERS_VENV, default
# .cache/peers-venv), never into the test environment. Raw data (per-message latencies, the
# minutes' timings, the table) go to target/peers/<UTC time>/, which git ignores.
# sigbot is a release build by default (PROFILE=dev for a debug one; the driver is always a debug
# build); the Synapse venv is the harness's
# ($SIGBOT_SYNAPSE_VENV, made by scripts/test).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-$here/target}
venv=${PEERS_VENV:-$here/.cache/peers-venv}
runs=${RUNS:-5}
lines=${MEETING_LINES:-10000}
out=$here/target/peers/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

# The peers, pinned (hcoop-meetbot 0.8.1 is the last release for Python 3.11).
heisenbridge_version=1.15.4
meetbot_version=0.8.1
if [ ! -x "$venv/bin/heisenbridge" ] || ! "$venv/bin/python" -c 'import hcoopmeetbotlogic' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "heisenbridge==$heisenbridge_version" "hcoop-meetbot==$meetbot_version"
fi

case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
# $SIGBOT_BIN and $PEERS_DRIVER name binaries already built (nothing is built then).
if [ -z "${SIGBOT_BIN:-}" ]; then
    cargo build --quiet --profile "$profile" --bin sigbot
    SIGBOT_BIN=$target/$dir/sigbot
fi
if [ -z "${PEERS_DRIVER:-}" ]; then
    # The driver is a debug build, as for benches/bridge.sh: the same for both peers.
    cargo build --quiet --example peers_bench
    PEERS_DRIVER=$target/debug/examples/peers_bench
fi
# A copy, so that another build in the same target directory cannot replace it mid-run.
bin=$out/sigbot
cp "$SIGBOT_BIN" "$bin"

echo "load before: $(uptime)" | tee "$out/load.txt"

# Minutes: one log, RUNS renders by each, whole-process wall time.
log=$out/meeting.log.txt
python3 benches/gen_meeting_log.py "$lines" "$log"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wall() { # prints the seconds "$@" took
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    echo "$s $e" | awk '{ printf "%.4f\n", $2 - $1 }'
}
: > "$out/minutes.txt"
i=0
while [ $i -lt "$runs" ]; do
    rm -rf "$out/minutes-peer" "$out/minutes-sigbot"
    p=$(wall "$venv/bin/python" benches/meetbot_peer.py "$log" "$out/minutes-peer")
    s=$(wall "$bin" meetings render "$log" --out "$out/minutes-sigbot")
    echo "run $i: peer ${p}s sigbot ${s}s" >> "$out/minutes.txt"
    echo "$p" >> "$out/minutes-peer.s"
    echo "$s" >> "$out/minutes-sigbot.s"
    i=$((i + 1))
done
peer_minutes=$(median < "$out/minutes-peer.s")
sigbot_minutes=$(median < "$out/minutes-sigbot.s")
echo "minutes of $lines lines, median of $runs: peer ${peer_minutes}s, sigbot ${sigbot_minutes}s" | tee -a "$out/minutes.txt"

SIGBOT_BIN=$bin "$PEERS_DRIVER" \
    --heisenbridge "$venv/bin/heisenbridge" \
    --out "$out" \
    --minutes "$peer_minutes $sigbot_minutes $runs $lines" \
    "$@" > "$out/table.md"
cat "$out/table.md"
echo "load after: $(uptime)" | tee -a "$out/load.txt"
echo "raw data: $out"
