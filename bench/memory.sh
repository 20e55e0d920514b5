#!/bin/bash
# Memory per connection, ShardMQ (default config) next to Mosquitto, broker and generator
# sharing the cores:
#   idle  - 10,000 clients connect and stay idle: (RSS with them - RSS before) / 10,000;
#   burst - 1,000 QoS 1 subscribers fall behind a 300-message burst, drain it and go quiet
#           (bench/memory_burst.py): what each still holds 7 s later.
# Usage: bench/memory.sh [REPS] (release builds of shardmq and shardmq-bench; mosquitto on
# PATH or in /usr/sbin). Output: one line per measurement.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
B=$ROOT/target/release/shardmq-bench
BIN=${BIN:-$ROOT/target/release/shardmq}
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
REPS=${1:-3}
W=$(mktemp -d); chmod 755 "$W"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT

start() { # name port -> sets PID
  local http
  if [ "$1" = shardmq ]; then
    http=$(free_port)
    "$BIN" --mqtt "127.0.0.1:$2" --http "127.0.0.1:$http" --set "node.data_dir=$W/data-$2" >/dev/null 2>&1 &
  else
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\nmax_queued_messages 1000\n' "$2" >"$W/m-$2.conf"
    "$MOSQ" -c "$W/m-$2.conf" >/dev/null 2>&1 &
  fi
  PID=$!
  wait_port "$2"
}

for rep in $(seq 1 "$REPS"); do
  for name in shardmq mosquitto; do
    port=$(free_port); start $name "$port"; sleep 0.5
    before=$(status_kb "$PID" VmRSS)
    $B conn -p "$port" -n 10000 --concurrency 100 --hold 8 --quiet >/dev/null 2>&1 &
    gen=$!
    sleep 6
    held=$(status_kb "$PID" VmRSS)
    echo "$name idle rep $rep: RSS $before -> $held kB: $(( (held - before) * 1024 / 10000 )) B per idle connection"
    wait $gen; kill "$PID"; wait "$PID" 2>/dev/null

    port=$(free_port); start $name "$port"
    echo "$name burst rep $rep: $(timeout 180 python3 "$ROOT/bench/memory_burst.py" "$port" "$PID" 1000)"
    kill "$PID"; wait "$PID" 2>/dev/null
  done
done
