#!/bin/sh
# Idle memory and startup of the embedded default config (issue 16): starts `sigbot` on
# config/sigbot.toml (its web and broker ports moved to free ones, nothing else changed), with
# the console's stdin held open, and prints the time from the start to /healthz "ok" (every
# network connected) and VmRSS / RssAnon / RssFile after REST seconds (default 10).
#
#   benches/idle.sh [BIN]       BIN: the sigbot binary (default target/release/sigbot)
#
# CONFIG=FILE measures another config instead (its ports 8080 and 1883 are moved the same way).
# SMAPS=FILE also writes the resident KiB of each mapping to FILE. The environment passes
# through, so that MALLOC_ARENA_MAX=2 or TOKIO_WORKER_THREADS=1 can be
# tried on the same binary.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$here/target}/release/sigbot}
rest=${REST:-10}
dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
web=$(free_port)
broker=$(free_port)
sed -e "s/127.0.0.1:8080/127.0.0.1:$web/" -e "s/127.0.0.1:1883/127.0.0.1:$broker/g" \
    "${CONFIG:-$here/config/sigbot.toml}" > "$dir/sigbot.toml"
ln -s "$here/commands" "$dir/commands"
mkfifo "$dir/stdin"
cd "$dir"
start=$(date +%s.%N)
"$bin" --config sigbot.toml < "$dir/stdin" > "$dir/stdout" 2> "$dir/log" &
pid=$!
# The console reads stdin: keep it open, never writing.
exec 3> "$dir/stdin"
up=
while [ -z "$up" ]; do
    if curl -fs "http://127.0.0.1:$web/healthz" 2>/dev/null | grep -q '"status":"ok"'; then
        up=$(date +%s.%N)
    elif ! kill -0 "$pid" 2>/dev/null; then
        echo "sigbot exited:" >&2; cat "$dir/log" >&2; exit 1
    else
        sleep 0.01 # the resolution of the startup figure
    fi
done
sleep "$rest"
# SMAPS=FILE: resident KiB per mapping (the binary's segments, libraries, heap, stacks).
if [ -n "${SMAPS:-}" ]; then
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "") ? "[anon]" : $6; perm = $2 }
         /^Rss:/ { rss[name " " perm] += $2 }
         END { for (k in rss) if (rss[k] > 0) printf "%8d KiB  %s\n", rss[k], k }' \
        "/proc/$pid/smaps" | sort -rn > "$SMAPS"
fi
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"; }
size=$(stat -c %s "$bin")
echo "$start $up $(kib VmRSS) $(kib RssAnon) $(kib RssFile) $(kib VmHWM) $size" | awk '{
    printf "startup %.3f s | VmRSS %.1f MiB (RssAnon %.1f + RssFile %.1f) | VmHWM %.1f MiB | binary %.1f MB\n",
        $2 - $1, $3 / 1024, $4 / 1024, $5 / 1024, $6 / 1024, $7 / 1e6 }'
