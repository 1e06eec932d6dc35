#!/usr/bin/env bash
# End-to-end MQTT relay throughput: N git.receive events published (QoS 1) to a local broker,
# timed until the last one is written in the console room by the release binary.
#
#   benches/mqtt-e2e.sh [N]        (default 10000; needs mosquitto, mosquitto_pub, python3)
#   SIGBOT_BIN=/path/to/sigbot benches/mqtt-e2e.sh [N]    (measure that binary, no build)
#
# The bot uses its embedded broker (rumqttd) unless BROKER=mosquitto. PUBLISHERS=P splits the
# events over P mosquitto_pub processes publishing at once (default 1), for when one publisher
# is the ceiling of the set-up.
set -euo pipefail
N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIXTURE=${SIGBOT_FIXTURES:-$ROOT/tests/fixtures/pagure-mqtt}/01_git.centos.org__git.receive.json
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# SIGBOT_BIN: a sigbot binary to measure instead (e.g. an earlier build, for a before/after).
if [ -n "${SIGBOT_BIN:-}" ]; then
  BIN=$SIGBOT_BIN
else
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sigbot
fi

BROKER_BLOCK="[broker]
listen = \"127.0.0.1:$PORT\""
if [ "${BROKER:-embedded}" = mosquitto ]; then
  BROKER_BLOCK=""
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$PORT" > "$WORK/mosquitto.conf"
  mosquitto -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
fi

cat > "$WORK/sigbot.toml" <<TOML
[bot]
data_dir = "$WORK/data"
[console]
$BROKER_BLOCK
[[mqtt]]
name = "local"
url = "mqtt://127.0.0.1:$PORT"
client_id = "sigbot-bench"
[[relay]]
name = "pushes"
from = "local"
topic = "git.centos.org/#"
when = "msg.repo.namespace == 'rpms'"
template = '{% include "pagure.j2" %}'
to = ["console/#local"]
TOML

P=${PUBLISHERS:-1}
python3 - "$FIXTURE" "$N" "$P" "$WORK/events" <<'PY'
import json, sys
msg = json.load(open(sys.argv[1]))
n, p, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
files = [open(f"{out}.{k}", "w") for k in range(p)]
for i in range(n):
    msg["end_commit"] = "%040x" % i
    print(json.dumps(msg), file=files[i % p])
PY
# Publishes every event: P publishers at once, each its share in order.
publish() {
  local pids=() k
  for k in $(seq 0 $((P - 1))); do
    mosquitto_pub -p "$PORT" -q 1 -t git.centos.org/git.receive -l < "$WORK/events.$k" &
    pids+=($!)
  done
  wait "${pids[@]}"
}

# The broker's own rate in the same run: the same events from the same publisher to a QoS 1
# subscriber that does nothing with them (mosquitto_sub), the ceiling of this set-up.
if [ "${BROKER:-embedded}" = mosquitto ]; then
  # A persistent session subscribed first (-E: exit once subscribed), so that nothing
  # published while the counting subscriber connects is missed.
  mosquitto_sub -p "$PORT" -q 1 -c -i bench-own -t 'git.centos.org/#' -E
  mosquitto_sub -p "$PORT" -q 1 -c -i bench-own -t 'git.centos.org/#' -C "$N" > /dev/null &
  sub=$!
  own_start=$(date +%s.%N)
  publish
  wait "$sub"
  own_end=$(date +%s.%N)
  python3 -c "d=$own_end-$own_start; print(f'broker alone ($P mosquitto_pub -> mosquitto -> mosquitto_sub, QoS 1): {$N/d:.0f} events/s')"
fi

mkfifo "$WORK/in"
RUST_LOG=sigbot=debug,info "$BIN" --config "$WORK/sigbot.toml" < "$WORK/in" > "$WORK/out" 2> "$WORK/log" &
exec 4> "$WORK/in"
for _ in $(seq 400); do grep -q "subscribed" "$WORK/log" && break; sleep 0.05; done

start=$(date +%s.%N)
publish
deadline=$(( $(date +%s) + 120 ))
until [ "$(grep -c pushed "$WORK/out")" -ge "$N" ]; do
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "only $(grep -c pushed "$WORK/out") of $N arrived" >&2; tail "$WORK/log" >&2; exit 1; fi
  sleep 0.02
done
end=$(date +%s.%N)
python3 -c "d=$end-$start; print(f'{$N} events in {d:.2f} s: {$N/d:.0f} events/s end to end (broker: ${BROKER:-embedded}, $P publishers)')"
