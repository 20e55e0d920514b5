#!/usr/bin/env bash
# The side-by-side suite: ShardMQ against Mosquitto and rumqttd, same generator, same scenarios,
# brokers in alternation (A B C A B C ...), every broker fresh for every run, loopback only.
# Every broker runs on its DEFAULT configuration (ShardMQ: no --set at all; Mosquitto: a
# listener and allow_anonymous; rumqttd: bench/rumqttd.toml, which it needs to start). The
# windows those defaults give towards a subscriber are measured and printed, not equalised.
#
# Usage: bench/run.sh            (or `just bench`)
# Knobs (environment): DUR=5 seconds measured per run, WARMUP=1, REPS=3,
#   PLACEMENTS="shared apart": `shared` = broker and generator unpinned on the same cores (what
#   a user gets), `apart` = broker on the first half of the cores, generator on the other half,
#   `onecore` = broker and a one-thread generator both pinned to CPU 0 (a lone client on its
#   broker's core: the placement the scheduler often, but not always, gives an unpinned one),
#   BROKERS="shardmq mosquitto rumqttd", IDLE=10000 connections (storm + memory),
#   IOT=10000 clients at 1 msg/s each, RTT=1000 rounds per lone-client round trip,
#   SETTLE=1 second of unmeasured pings before the second lone-client probe,
#   PARTS="rtt throughput storm iot" (which parts to run), OUT=results folder.
# Needs root for apt-get (Mosquitto) and a raised `ulimit -n` (done here).
# Writes $OUT/runs.jsonl (one line per run) and prints the tables (bench/table.py).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-5}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
PLACEMENTS=${PLACEMENTS:-"shared apart"}
BROKERS=${BROKERS:-"shardmq mosquitto rumqttd"}
IDLE=${IDLE:-10000}
PARTS=${PARTS:-"rtt throughput storm iot"}
IOT=${IOT:-10000}
RTT=${RTT:-1000}
SETTLE=${SETTLE:-1}
part() { [[ " $PARTS " == *" $1 "* ]]; }
OUT=${OUT:-$ROOT/target/bench-results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RUNS="$OUT/runs.jsonl"
: > "$RUNS"
NPROC=$(nproc)
HALF=$(( NPROC > 1 ? NPROC / 2 : 1 ))
BROKER_CPUS="0-$((HALF - 1))"
GEN_CPUS="$(( NPROC > 1 ? HALF : 0 ))-$((NPROC - 1))"

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

# start_broker NAME PLACEMENT -> sets BPID, BPORT
start_broker() {
    local name=$1 placement=$2 pin=""
    BPORT=$(free_port)
    [ "$placement" = apart ] && pin="taskset -c $BROKER_CPUS"
    [ "$placement" = onecore ] && pin="taskset -c 0"
    case $name in
    shardmq)
        $pin "$SHARDMQ" --mqtt "127.0.0.1:$BPORT" --http "127.0.0.1:$(free_port)" >"$OUT/shardmq.log" 2>&1 &
        ;;
    mosquitto)
        cat >"$OUT/mosquitto.conf" <<CONF
listener $BPORT 127.0.0.1
allow_anonymous true
CONF
        $pin "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
        ;;
    rumqttd)
        sed -e "s/@PORT@/$BPORT/" -e "s/@CONSOLE@/$(free_port)/" "$ROOT/bench/rumqttd.toml" >"$OUT/rumqttd.toml"
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

# gen_cmd PLACEMENT -> the generator's pinning and thread flags
gen_cmd() {
    if [ "$1" = apart ]; then
        echo "taskset -c $GEN_CPUS $GEN --threads $(( NPROC > 1 ? NPROC - HALF : 1 ))"
    elif [ "$1" = onecore ]; then
        echo "taskset -c 0 $GEN --threads 1"
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

# run_rtt PLACEMENT BROKER REP: one client, one request at a time, on an idle broker; twice
# per broker start: a client measured from its first round trip (`rtt`), then a new one that
# pinged for SETTLE seconds first (`rtt_settled`): the scheduler places a fresh client next to
# an unpinned broker thread for its first few thousand round trips, then spreads them.
run_rtt() {
    local mode=$1 broker=$2 rep=$3 scenario settle
    start_broker "$broker" "$mode"
    for scenario in rtt rtt_settled; do
        settle=0
        [ "$scenario" = rtt_settled ] && settle=$SETTLE
        local json="$OUT/$mode-$scenario-$broker-$rep.json" t0 t1 rc=0
        t0=$(ticks "$BPID")
        $(gen_cmd "$mode") --port "$BPORT" --json "$json" rtt --count "$RTT" --settle "$settle" \
            --timeout 120 >"$OUT/gen.log" 2>&1 || rc=$?
        t1=$(ticks "$BPID")
        if [ ! -s "$json" ]; then
            log "$mode $scenario $broker #$rep: failed (rc $rc): $(tail -1 "$OUT/gen.log")"
            echo "{\"mode\":\"$mode\",\"scenario\":\"$scenario\",\"broker\":\"$broker\",\"rep\":$rep,\"failed\":true}" >>"$RUNS"
            continue
        fi
        jq -c --arg mode "$mode" --arg s "$scenario" --arg b "$broker" --argjson rep "$rep" \
            --argjson cpu "$(echo "($t1 - $t0) / $(getconf CLK_TCK)" | bc -l)" \
            '{mode: $mode, scenario: $s, broker: $b, rep: $rep, cpu_s: $cpu, settle_s: .settle_s,
              ping_p50_us: .ping.p50_us, ping_p99_us: .ping.p99_us, qos1_p50_us: .qos1.p50_us,
              qos1_p99_us: .qos1.p99_us, qos1_per_s: .qos1.per_s, qos2_p50_us: .qos2.p50_us,
              sub_p50_us: .subscribe.p50_us, sub_p99_us: .subscribe.p99_us,
              connect_p50_us: .connect.p50_us, connect_p99_us: .connect.p99_us}' "$json" >>"$RUNS"
        log "$mode $scenario $broker #$rep: $(tail -1 "$RUNS")"
    done
    stop_broker
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

# --- the defaults' windows, measured ------------------------------------------------------
# A window bounds a single subscriber's QoS 1 rate. Every broker runs its default here, so the
# windows differ; probe each one (a QoS 1 subscriber that acknowledges nothing) and print it.
declare -A WINDOW
for b in $BROKERS; do
    start_broker "$b" shared
    WINDOW[$b]=$("$GEN" window --port "$BPORT" --count 1000 --timeout 30 --json "$OUT/window-$b.json" >/dev/null 2>&1 &&
        jq -r 'if .unbounded then "unbounded" else .window end' "$OUT/window-$b.json" || echo "probe failed")
    stop_broker
    log "$b: default in-flight window towards a subscriber, measured: ${WINDOW[$b]}"
    echo "{\"scenario\":\"window\",\"broker\":\"$b\",\"window\":\"${WINDOW[$b]}\"}" >>"$RUNS"
done

# --- the suite ---------------------------------------------------------------------------
COMMON=(--size 64 --warmup "$WARMUP" --duration "$DUR" --drain 10 --timeout 120)
SPECS=(
    "pairs8-q1-w1:pairs -n 8 --qos 1 --window 1"
    "pairs8-q1-w20:pairs -n 8 --qos 1 --window 20"
    "pairs8-q1-w100:pairs -n 8 --qos 1 --window 100"
    "fanin16-q1-w20:fanin -n 16 --qos 1 --window 20"
    "fanout16-q1-w20:fanout -n 16 --qos 1 --window 20"
    "pairs8-q0:pairs -n 8 --qos 0"
    "fanin16-q0:fanin -n 16 --qos 0"
    "fanout16-q0:fanout -n 16 --qos 0"
)
for mode in $PLACEMENTS; do
    part rtt && for rep in $(seq 1 "$REPS"); do
        for b in $BROKERS; do run_rtt "$mode" "$b" "$rep"; done
    done
    part throughput && for spec in "${SPECS[@]}"; do
        sname="${spec%%:*}"
        read -r -a args <<<"${spec#*:}"
        for rep in $(seq 1 "$REPS"); do
            for b in $BROKERS; do
                run_one "$mode" "$sname" "$b" "$rep" -- "${args[@]}" "${COMMON[@]}"
            done
        done
    done
    part storm && for rep in $(seq 1 "$REPS"); do
        for b in $BROKERS; do run_idle "$mode" "$b" "$rep"; done
    done
    part iot && for rep in $(seq 1 "$REPS"); do
        for b in $BROKERS; do
            run_one "$mode" "iot$IOT" "$b" "$rep" -- mixed -n "$IOT" --rate 1 --qos 1 --concurrency 200 \
                --size 64 --warmup 2 --duration "$(( DUR * 2 ))" --drain 10 --timeout 120
        done
    done
done

python3 "$ROOT/bench/table.py" "$RUNS" | tee "$OUT/tables.md"
log "results in $OUT"
