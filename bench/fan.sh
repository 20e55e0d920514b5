#!/bin/bash
# Issue 18's shapes on this machine: fan-out 1->16 and fan-in 16->1, QoS 1, the generator's
# window 100, 64 B, broker and generator sharing the cores. ShardMQ on 1 and 2 shards, on its
# defaults and with mqtt.max_inflight=100 (rumqttd's window), next to rumqttd (bench/rumqttd.toml)
# and Mosquitto (a listener, allow_anonymous). Per run: msgs/s, lost, latency p50, the
# broker's CPU per message.
# Usage: bench/fan.sh [REPS] (release builds; rumqttd and mosquitto on PATH, ~/.cargo/bin or
# /usr/sbin). Output: one line per run.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
B=$ROOT/target/release/shardmq-bench
BIN=${BIN:-$ROOT/target/release/shardmq}
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
RUMQTTD=$(command -v rumqttd || echo ~/.cargo/bin/rumqttd)
REPS=${1:-3}
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
for rep in $(seq 1 "$REPS"); do
  for broker in shardmq-1 shardmq-2 shardmq-1-inflight100 shardmq-2-inflight100 rumqttd mosquitto; do
    for sc in "fanout -n 16 -q 1 --window 100" "fanin -n 16 -q 1 --window 100"; do
      M=$(free_port); H=$(free_port)
      case $broker in
        shardmq-*)
          args=(--shards "$(echo "$broker" | cut -d- -f2)")
          [[ $broker == *inflight100 ]] && args+=(--set mqtt.max_inflight=100)
          "$BIN" "${args[@]}" --mqtt "127.0.0.1:$M" --http "127.0.0.1:$H" --set "node.data_dir=$W/d$M" >/dev/null 2>&1 & ;;
        rumqttd)
          sed "s/@PORT@/$M/; s/@CONSOLE@/$H/" "$ROOT/bench/rumqttd.toml" >"$W/r.toml"
          "$RUMQTTD" -c "$W/r.toml" >/dev/null 2>&1 & ;;
        mosquitto)
          printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$M" >"$W/m.conf"
          "$MOSQ" -c "$W/m.conf" >/dev/null 2>&1 & ;;
      esac
      pid=$!
      wait_port "$M"; sleep 0.3
      a=$(ticks $pid)
      $B $sc -p "$M" --duration 3 --warmup 1 --json "$W/o.json" --quiet >/dev/null 2>&1
      b=$(ticks $pid)
      python3 -c "import json; d=json.load(open('$W/o.json')); print('$broker', '${sc%% *}', round(d['delivered_per_s']), 'lost', d['lost'], 'p50_us', round(d['latency']['p50_us']), 'cpu_us_per_msg', round(($b-$a)*10000/max(1,d['delivered']),2))" 2>/dev/null || echo "$broker ${sc%% *} failed"
      kill $pid; wait $pid 2>/dev/null
    done
  done
done
