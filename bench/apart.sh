#!/usr/bin/env bash
# The real-client shapes with broker and generator on separate cores, at 1, 2, 4 and 8 shards,
# next to Mosquitto and rumqttd, for a machine of 16 cores or more where nothing can be
# installed (the device machine): binaries come prebuilt in $BIN (shardmq, shardmq-bench,
# mosquitto with its libraries in $BIN/lib, rumqttd). Brokers on cores 0-7 (ShardMQ with
# --shards N takes the first N), the generator on cores 8-15. Every broker on its defaults.
# Needs only bash, taskset and coreutils; writes one JSON report per run plus the broker's CPU
# seconds (ticks.txt) to $OUT, for bench/table_apart.py to read.
# Knobs: BIN=.devbin OUT=target/apart DUR=2 WARMUP=1 REPS=2 SHARDS="1 2 4 8" BROKER_CPUS=0-7
# GEN_CPUS=8-15 GEN_THREADS=8.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/.devbin}
OUT=${OUT:-$ROOT/target/apart}
DUR=${DUR:-2}
WARMUP=${WARMUP:-1}
REPS=${REPS:-2}
SHARDS=${SHARDS:-"1 2 4 8"}
BROKER_CPUS=${BROKER_CPUS:-0-7}
GEN_CPUS=${GEN_CPUS:-8-15}
GEN_THREADS=${GEN_THREADS:-8}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ulimit -n 65536 2>/dev/null || true
. "$ROOT/bench/lib.sh"
# No python3 there: a random port below the ephemeral range (each run takes a new one; a
# broker that cannot bind it is started again on another).
free_port() { echo $(( 10000 + RANDOM % 22000 )); }
GEN="taskset -c $GEN_CPUS $BIN/shardmq-bench --threads $GEN_THREADS"
TICKS="$OUT/ticks.txt"
: >"$TICKS"

start() { # NAME -> BPID BPORT
    local try
    for try in 1 2 3; do
        start_once "$1" && return 0
        kill "$BPID" 2>/dev/null; wait "$BPID" 2>/dev/null
    done
    echo "$1 did not start"; tail -3 "$OUT/$1.log"; return 1
}
start_once() {
    BPORT=$(free_port)
    case $1 in
    shardmq-*) taskset -c "$BROKER_CPUS" "$BIN/shardmq" --mqtt "127.0.0.1:$BPORT" --http "127.0.0.1:$(free_port)" \
        --shards "${1#shardmq-}" >"$OUT/$1.log" 2>&1 & ;;
    mosquitto) printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$BPORT" >"$OUT/mosquitto.conf"
        taskset -c "${BROKER_CPUS%%-*}" "$BIN/mosquitto" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 & ;;
    rumqttd) sed -e "s/@PORT@/$BPORT/" -e "s/@CONSOLE@/$(free_port)/" "$ROOT/bench/rumqttd.toml" >"$OUT/rumqttd.toml"
        taskset -c "$BROKER_CPUS" "$BIN/rumqttd" --config "$OUT/rumqttd.toml" >"$OUT/rumqttd.log" 2>&1 & ;;
    esac
    BPID=$!
    wait_port "$BPORT" && kill -0 "$BPID" 2>/dev/null
}
stop() { kill "$BPID" 2>/dev/null; wait "$BPID" 2>/dev/null; }

BROKERS="mosquitto rumqttd"
for n in $SHARDS; do BROKERS="$BROKERS shardmq-$n"; done
[ -x "$BIN/rumqttd" ] || BROKERS=${BROKERS/rumqttd /}
SPECS=(
    "rtt:rtt --count 500"
    "pairs8-q1-w1:pairs -n 8 --qos 1 --window 1"
    "pairs8-q1-w20:pairs -n 8 --qos 1 --window 20"
    "pairs64-q1-w100:pairs -n 64 --qos 1 --window 100"
    "fanin16-q1-w20:fanin -n 16 --qos 1 --window 20"
    "fanout16-q1-w20:fanout -n 16 --qos 1 --window 20"
    "pairs8-q0:pairs -n 8 --qos 0"
)
for spec in "${SPECS[@]}"; do
    name=${spec%%:*}
    read -r -a args <<<"${spec#*:}"
    extra=(--size 64 --warmup "$WARMUP" --duration "$DUR" --drain 10 --timeout 60)
    [ "$name" = rtt ] && extra=(--timeout 60)
    for rep in $(seq 1 "$REPS"); do
        for b in $BROKERS; do
            start "$b" || continue
            t0=$(ticks "$BPID")
            $GEN --port "$BPORT" --quiet --json "$OUT/$name.$b.$rep.json" "${args[@]}" "${extra[@]}" \
                >"$OUT/gen.log" 2>&1 || echo "$name $b #$rep: generator rc $? $(tail -1 "$OUT/gen.log")"
            t1=$(ticks "$BPID")
            stop
            echo "$name $b $rep $(( t1 - t0 ))" >>"$TICKS"
        done
    done
    echo "done: $name"
done
