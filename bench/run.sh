#!/usr/bin/env bash
# The side-by-side suite: ShardMQ against Mosquitto and rumqttd, same generator, same scenarios,
# brokers in alternation (A B C A B C ...), every broker fresh for every run, loopback only.
#
# Usage: bench/run.sh            (or `just bench`)
# Knobs (environment): DUR=5 seconds measured per run, WARMUP=1, REPS=3, MODES="1shard all",
#   BROKERS="shardmq mosquitto rumqttd", IDLE=10000 connections, OUT=results folder,
#   PARTS="throughput idle rate" (which parts to run), RATE=total msgs/s of the fixed-rate run
#   (default: half of Mosquitto's median 8-pairs QoS 1 rate measured in the same run),
#   QOS="0 1" (throughput scenarios' QoS levels), INFLIGHT=100 (the QoS 1/2 window towards each
#   client: ShardMQ mqtt.max_inflight, Mosquitto max_inflight_messages; rumqttd 0.20 has no
#   setting for it and always allows 100, whatever max_inflight_count says, so 100 is the one
#   value at which all three are equal), MOSQUITTO_NODELAY=false (Mosquitto's default, Nagle on;
#   `true` sets TCP_NODELAY as ShardMQ does, see BENCHMARKS.md run 5). Before the suite, `shardmq-bench window` measures each
#   broker's real window and the suite stops if they differ (FORCE_WINDOWS=1 goes on anyway).
# Needs root for apt-get (Mosquitto) and a raised `ulimit -n` (done here).
# Writes $OUT/runs.jsonl (one line per run) and prints the tables (bench/table.py).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-5}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
MODES=${MODES:-"1shard all"}
BROKERS=${BROKERS:-"shardmq mosquitto rumqttd"}
IDLE=${IDLE:-10000}
PARTS=${PARTS:-"throughput idle rate"}
QOS=${QOS:-"0 1"}
INFLIGHT=${INFLIGHT:-100}
MOSQUITTO_NODELAY=${MOSQUITTO_NODELAY:-false}
part() { [[ " $PARTS " == *" $1 "* ]]; }
OUT=${OUT:-$ROOT/target/bench-results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RUNS="$OUT/runs.jsonl"
: > "$RUNS"
NPROC=$(nproc)
LAST=$((NPROC - 1))

log() { echo "[bench] $*" >&2; }

# --- peers -------------------------------------------------------------------------------
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    log "installing mosquitto (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if ! command -v rumqttd >/dev/null && [ ! -x "$HOME/.cargo/bin/rumqttd" ]; then
    log "installing rumqttd (cargo install rumqttd)"
    cargo install rumqttd
fi
RUMQTTD=$(command -v rumqttd || echo "$HOME/.cargo/bin/rumqttd")

log "building ShardMQ and the generator (release)"
(cd "$ROOT" && cargo build --release -q -p shardmq -p shardmq-bench)
SHARDMQ="$ROOT/target/release/shardmq"
GEN="$ROOT/target/release/shardmq-bench"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- helpers -----------------------------------------------------------------------------
. "$ROOT/bench/lib.sh"

# start_broker NAME MODE -> sets BPID, BPORT
start_broker() {
    local name=$1 mode=$2 pin=""
    BPORT=$(free_port)
    [ "$mode" = 1shard ] && pin="taskset -c 0"
    case $name in
    shardmq)
        local shards=$NPROC
        [ "$mode" = 1shard ] && shards=1
        $pin "$SHARDMQ" --mqtt "127.0.0.1:$BPORT" --http "127.0.0.1:$(free_port)" --shards "$shards" \
            --set mqtt.max_mqueue=100000 --set mqtt.max_inflight="$INFLIGHT" >"$OUT/shardmq.log" 2>&1 &
        ;;
    mosquitto)
        cat >"$OUT/mosquitto.conf" <<CONF
listener $BPORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages $INFLIGHT
max_connections -1
set_tcp_nodelay $MOSQUITTO_NODELAY
CONF
        $pin "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
        ;;
    rumqttd)
        sed -e "s/@PORT@/$BPORT/" -e "s/@CONSOLE@/$(free_port)/" -e "s/@INFLIGHT@/$INFLIGHT/" "$ROOT/bench/rumqttd.toml" >"$OUT/rumqttd.toml"
        $pin "$RUMQTTD" --config "$OUT/rumqttd.toml" >"$OUT/rumqttd.log" 2>&1 &
        ;;
    esac
    BPID=$!
    if ! wait_port "$BPORT"; then
        log "$name did not start; see $OUT/$name.log"
        tail -5 "$OUT/$name.log" >&2
        exit 1
    fi
}

stop_broker() {
    kill "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
}

# gen_cmd MODE -> the generator's pinning and thread flags
gen_cmd() {
    if [ "$1" = 1shard ]; then
        echo "taskset -c $((NPROC > 1 ? 1 : 0)) $GEN --threads 1"
    else
        echo "$GEN --threads $NPROC"
    fi
}

# run_one MODE SCENARIO_NAME BROKER REP -- generator args...
run_one() {
    local mode=$1 sname=$2 broker=$3 rep=$4
    shift 5
    start_broker "$broker" "$mode"
    local base_rss t0 t1 json="$OUT/$mode-$sname-$broker-$rep.json"
    base_rss=$(status_kb "$BPID" VmRSS)
    t0=$(ticks "$BPID")
    local rc=0
    $(gen_cmd "$mode") --port "$BPORT" --quiet --json "$json" "$@" >"$OUT/gen.log" 2>&1 || rc=$?
    t1=$(ticks "$BPID")
    local hwm
    hwm=$(status_kb "$BPID" VmHWM)
    stop_broker
    if [ ! -s "$json" ]; then
        log "$mode $sname $broker #$rep: generator failed (rc $rc): $(tail -1 "$OUT/gen.log")"
        echo "{\"mode\":\"$mode\",\"scenario\":\"$sname\",\"broker\":\"$broker\",\"rep\":$rep,\"failed\":true}" >>"$RUNS"
        return 0
    fi
    jq -c --arg mode "$mode" --arg s "$sname" --arg b "$broker" --argjson rep "$rep" \
        --argjson cpu "$(echo "($t1 - $t0) / $(getconf CLK_TCK)" | bc -l)" \
        --argjson hwm "$hwm" --argjson base "$base_rss" --argjson rc "$rc" \
        '{mode: $mode, scenario: $s, broker: $b, rep: $rep, rc: $rc, cpu_s: $cpu, hwm_kb: $hwm,
          base_rss_kb: $base, delivered_per_s, delivered, lost, duplicates, reordered,
          p50_us: .latency.p50_us, p99_us: .latency.p99_us, p999_us: .latency.p999_us,
          connects_per_s}' "$json" >>"$RUNS"
    log "$mode $sname $broker #$rep: $(jq -r '"\(.delivered_per_s|floor) msg/s p99 \(.latency.p99_us) us lost \(.lost)"' "$json")"
}

# run_idle MODE BROKER REP: IDLE connections held open; RSS per connection, connects/s
run_idle() {
    local mode=$1 broker=$2 rep=$3
    start_broker "$broker" "$mode"
    local base_rss json="$OUT/$mode-idle-$broker-$rep.json" glog="$OUT/gen-idle.log"
    sleep 0.3
    base_rss=$(status_kb "$BPID" VmRSS)
    $(gen_cmd "$mode") --port "$BPORT" --json "$json" conn -n "$IDLE" --hold 3 --timeout 60 >"$glog" 2>&1 &
    local gpid=$! held=""
    for _ in $(seq 1 1200); do
        grep -q holding "$glog" 2>/dev/null && { sleep 1; held=$(status_kb "$BPID" VmRSS); break; }
        kill -0 "$gpid" 2>/dev/null || break
        sleep 0.05
    done
    wait "$gpid" || true
    stop_broker
    if [ -z "$held" ] || [ ! -s "$json" ]; then
        log "$mode idle $broker #$rep: failed: $(tail -1 "$glog")"
        echo "{\"mode\":\"$mode\",\"scenario\":\"idle\",\"broker\":\"$broker\",\"rep\":$rep,\"failed\":true}" >>"$RUNS"
        return 0
    fi
    jq -c --arg mode "$mode" --arg b "$broker" --argjson rep "$rep" --argjson held "$held" \
        --argjson base "$base_rss" --argjson n "$IDLE" \
        '{mode: $mode, scenario: "idle", broker: $b, rep: $rep, connects_per_s,
          connack_p99_us: .connack.p99_us, bytes_per_conn: (($held - $base) * 1024 / $n)}' \
        "$json" >>"$RUNS"
    log "$mode idle $broker #$rep: $(tail -1 "$RUNS")"
}

# --- equal settings, measured ----------------------------------------------------------
# A window bounds a single subscriber's rate, so it must be the same for every broker: probe
# each one (a QoS 1 subscriber that acknowledges nothing) rather than trust its configuration.
declare -A WINDOW
for b in $BROKERS; do
    start_broker "$b" 1shard
    WINDOW[$b]=$("$GEN" window --port "$BPORT" --count 1000 --timeout 30 --json "$OUT/window-$b.json" >/dev/null 2>&1 &&
        jq -r 'if .unbounded then "unbounded" else .window end' "$OUT/window-$b.json" || echo "probe failed")
    stop_broker
    log "$b: in-flight window towards a subscriber, measured: ${WINDOW[$b]} (INFLIGHT=$INFLIGHT)"
done
if [ "$(printf '%s\n' "${WINDOW[@]}" | sort -u | wc -l)" -gt 1 ]; then
    log "the brokers' windows differ: the QoS 1 comparisons would not be like for like"
    [ "${FORCE_WINDOWS:-0}" = 1 ] || exit 1
fi

# --- the suite ---------------------------------------------------------------------------
COMMON=(--size 64 --warmup "$WARMUP" --duration "$DUR" --drain 10 --timeout 120)
for mode in $MODES; do
    part throughput && for qos in $QOS; do
        for spec in "fanin16:fanin -n 16" "fanout16:fanout -n 16" "pairs8:pairs -n 8"; do
            sname="${spec%%:*}-q$qos"
            read -r -a args <<<"${spec#*:}"
            for rep in $(seq 1 "$REPS"); do
                for b in $BROKERS; do
                    run_one "$mode" "$sname" "$b" "$rep" -- "${args[@]}" --qos "$qos" "${COMMON[@]}"
                done
            done
        done
    done
    part idle && for rep in $(seq 1 "$REPS"); do
        for b in $BROKERS; do run_idle "$mode" "$b" "$rep"; done
    done
    part rate || continue
    # Fixed rate (QoS 1): half of Mosquitto's median 8-pairs QoS 1 rate, over 8 publishers.
    half=${RATE:-$(jq -s --arg m "$mode" '[.[] | select(.mode == $m and .scenario == "pairs8-q1" and .broker == "mosquitto" and (.failed | not)) | .delivered_per_s] | sort | if length == 0 then 20000 else .[length / 2 | floor] / 2 end' "$RUNS")}
    per_pub=$(echo "$half / 8" | bc -l)
    log "$mode fixed rate: $half msgs/s in total ($per_pub per publisher)"
    for rep in $(seq 1 "$REPS"); do
        for b in $BROKERS; do
            run_one "$mode" "rate-q1" "$b" "$rep" -- pairs -n 8 --qos 1 --rate "$per_pub" "${COMMON[@]}"
        done
    done
done

python3 "$ROOT/bench/table.py" "$RUNS" | tee "$OUT/tables.md"
log "results in $OUT"
