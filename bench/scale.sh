#!/usr/bin/env bash
# How throughput scales with shards: ShardMQ with S shards pinned to cores 0..S-1 for each S,
# the generator pinned to cores of its own, the same scenarios each time; then the peers on the
# cores of the largest S (Mosquitto is single-threaded: it gets core 0).
#
# Usage: bench/scale.sh           (needs a machine with more cores than the largest S)
# Knobs (environment): SHARDS="1 2 4 8", GEN_CORES (default: the upper half of the cores),
#   DUR=4 seconds measured, WARMUP=1, N=64 clients per side, PEERS="mosquitto rumqttd",
#   BIN (folder holding shardmq and shardmq-bench; default target/release),
#   MOSQUITTO, RUMQTTD (binaries), OUT (results folder), INFLIGHT=100 (the QoS 1 window towards
#   each client, set alike on every broker; rumqttd 0.20 always uses 100, see bench/run.sh).
# Writes $OUT/scale.jsonl (one line per run) and prints a table.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NPROC=$(nproc)
SHARDS=${SHARDS:-"1 2 4 8"}
DUR=${DUR:-4}
WARMUP=${WARMUP:-1}
N=${N:-64}
INFLIGHT=${INFLIGHT:-100}
PEERS=${PEERS:-"mosquitto rumqttd"}
BIN=${BIN:-$ROOT/target/release}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
RUMQTTD=${RUMQTTD:-$(command -v rumqttd || echo "$HOME/.cargo/bin/rumqttd")}
GEN_CORES=${GEN_CORES:-$(seq -s, $((NPROC / 2)) $((NPROC - 1)))}
GEN_THREADS=$(echo "$GEN_CORES" | tr ',' '\n' | wc -l)
OUT=${OUT:-$ROOT/target/bench-results/scale-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RUNS="$OUT/scale.jsonl"
: >"$RUNS"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log() { echo "[scale] $*" >&2; }
. "$ROOT/bench/lib.sh"

SCENARIOS=(
    "pairs-q0:pairs -n $N --qos 0"
    "pairs-q1:pairs -n $N --qos 1"
    "fanin-q1:fanin -n $N --qos 1"
    "fanout-q1:fanout -n $N --qos 1"
)

# run BROKER SHARDS CORES SCENARIO_NAME -- generator args
run() {
    local broker=$1 shards=$2 cores=$3 sname=$4
    shift 5
    local port
    port=$(free_port)
    case $broker in
    shardmq)
        taskset -c "$cores" "$BIN/shardmq" --mqtt "127.0.0.1:$port" --http "127.0.0.1:$(free_port)" \
            --set mqtt.max_mqueue=100000 --set mqtt.max_inflight="$INFLIGHT" >"$OUT/broker.log" 2>&1 &
        ;;
    mosquitto)
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages %s\nmax_connections -1\n' \
            "$port" "$INFLIGHT" >"$OUT/mosquitto.conf"
        taskset -c "$cores" "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/broker.log" 2>&1 &
        ;;
    rumqttd)
        sed -e "s/@PORT@/$port/" -e "s/@CONSOLE@/$(free_port)/" -e "s/@INFLIGHT@/$INFLIGHT/" "${RUMQTTD_TOML:-$ROOT/bench/rumqttd.toml}" >"$OUT/rumqttd.toml"
        taskset -c "$cores" "$RUMQTTD" --config "$OUT/rumqttd.toml" >"$OUT/broker.log" 2>&1 &
        ;;
    esac
    local pid=$!
    if ! wait_port "$port"; then
        log "$broker did not start: $(tail -2 "$OUT/broker.log")"
        kill "$pid" 2>/dev/null
        return 0
    fi
    local t0 t1 json="$OUT/$broker-$shards-$sname.json"
    t0=$(ticks "$pid")
    taskset -c "$GEN_CORES" "$BIN/shardmq-bench" --threads "$GEN_THREADS" --port "$port" --quiet \
        --json "$json" "$@" --size 64 --warmup "$WARMUP" --duration "$DUR" --drain 10 --timeout 120 \
        >"$OUT/gen.log" 2>&1
    t1=$(ticks "$pid")
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ ! -s "$json" ]; then
        log "$broker $shards $sname: generator failed: $(tail -1 "$OUT/gen.log")"
        return 0
    fi
    python3 - "$json" "$broker" "$shards" "$sname" "$(((t1 - t0)))" "$(getconf CLK_TCK)" >>"$RUNS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu = int(sys.argv[5]) / int(sys.argv[6])
d = r.get("delivered") or 0
print(json.dumps({"broker": sys.argv[2], "shards": int(sys.argv[3]), "scenario": sys.argv[4],
    "delivered_per_s": r.get("delivered_per_s"), "p50_us": r["latency"]["p50_us"],
    "p99_us": r["latency"]["p99_us"], "lost": r.get("lost"), "cpu_s": cpu,
    "cpu_s_per_100k": cpu / (d / 1e5) if d else None}))
PY
    log "$broker shards=$shards $sname: $(tail -1 "$RUNS")"
}

log "$NPROC cores; generator on $GEN_CORES ($GEN_THREADS threads); shards: $SHARDS"
largest=1
for s in $SHARDS; do
    largest=$s
    for spec in "${SCENARIOS[@]}"; do
        read -r -a args <<<"${spec#*:}"
        run shardmq "$s" "0-$((s - 1))" "${spec%%:*}" -- "${args[@]}"
    done
done
for p in $PEERS; do
    cores="0-$((largest - 1))"
    shards=$largest
    [ "$p" = mosquitto ] && cores=0 && shards=1
    for spec in "${SCENARIOS[@]}"; do
        read -r -a args <<<"${spec#*:}"
        run "$p" "$shards" "$cores" "${spec%%:*}" -- "${args[@]}"
    done
done

python3 - "$RUNS" <<'PY' | tee "$OUT/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = {r["scenario"]: r["delivered_per_s"] for r in rows if r["broker"] == "shardmq" and r["shards"] == 1}
print("| broker | cores | scenario | msgs/s | × 1 shard | p50 / p99 µs | CPU s per 100 k | lost |")
print("|---|---:|---|---:|---:|---|---:|---:|")
for r in rows:
    b = base.get(r["scenario"])
    x = f'{r["delivered_per_s"] / b:.2f}×' if b else "–"
    c = f'{r["cpu_s_per_100k"]:.3f}' if r["cpu_s_per_100k"] is not None else "–"
    print(f'| {r["broker"]} | {r["shards"]} | {r["scenario"]} | {r["delivered_per_s"]:,.0f} | {x} '
          f'| {r["p50_us"]:,.0f} / {r["p99_us"]:,.0f} | {c} | {r["lost"]} |')
PY
log "results in $OUT"
