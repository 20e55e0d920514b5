#!/bin/bash
# TLS and WebSocket listeners side by side: ShardMQ (2 shards, its listeners on) against
# Mosquitto (listeners on the same certificate), broker and generator sharing the cores.
# Per broker and repetition: full and resumed TLS handshakes per second (`conn`, 2,000
# connections, 100 at once), and QoS 1 pairs (8, window 20, 64 B) over tcp, tls, ws and wss
# with the broker's CPU per message.
# Usage: bench/tls.sh [REPS] (release builds of shardmq and shardmq-bench; mosquitto on PATH
# or in /usr/sbin; openssl for the test certificates). Output: one line per measurement.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
B=$ROOT/target/release/shardmq-bench
BIN=$ROOT/target/release/shardmq
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
REPS=${1:-3}
W=$(mktemp -d); chmod 755 "$W"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT

# A CA and a server certificate for 127.0.0.1 / localhost (v3, as rustls requires).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/ca.key" -out "$W/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$W/server.key" -out "$W/server.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$W/ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -out "$W/server.pem" -days 2 -extfile "$W/ext" 2>/dev/null
chmod 644 "$W"/*

measure() { # name pid tcp tls ws wss
  local name=$1 pid=$2 tcp=$3 tls=$4 ws=$5 wss=$6
  for mode in full resumed; do
    local extra=""; [ $mode = resumed ] && extra="--tls-resume"
    $B conn -p "$tls" --tls --cafile "$W/ca.pem" -n 2000 --concurrency 100 --threads 2 $extra --json "$W/c.json" --quiet >/dev/null 2>&1
    python3 -c "import json; d=json.load(open('$W/c.json')); print('$name tls-connects-$mode', round(d['connects_per_s']), 'resumed', d.get('tls_resumed'), 'failed', d['failed_connections'])"
  done
  for t in tcp tls ws wss; do
    local port flags
    case $t in
      tcp) port=$tcp; flags="";;
      tls) port=$tls; flags="--tls --cafile $W/ca.pem";;
      ws) port=$ws; flags="--ws";;
      wss) port=$wss; flags="--tls --ws --cafile $W/ca.pem";;
    esac
    local a; a=$(ticks "$pid")
    $B pairs -p "$port" $flags -q 1 --window 20 -n 8 --size 64 --duration 3 --warmup 1 --json "$W/p.json" --quiet >/dev/null 2>&1
    local b; b=$(ticks "$pid")
    python3 -c "import json; d=json.load(open('$W/p.json')); print('$name pairs-$t', round(d['delivered_per_s']), 'lost', d['lost'], 'p50_us', round(d['latency']['p50_us']), 'cpu_us_per_msg', round(($b-$a)*10000/max(1,d['delivered']),2))"
  done
}

for rep in $(seq "$REPS"); do
  # ShardMQ
  P=($(for i in 1 2 3 4 5; do free_port; done))
  D=$(mktemp -d)
  $BIN --mqtt 127.0.0.1:${P[0]} --http 127.0.0.1:${P[4]} --set node.data_dir=$D \
    --set listeners.ssl.bind=127.0.0.1:${P[1]} --set listeners.ssl.certfile=$W/server.pem --set listeners.ssl.keyfile=$W/server.key \
    --set listeners.ws.bind=127.0.0.1:${P[2]} \
    --set listeners.wss.bind=127.0.0.1:${P[3]} --set listeners.wss.certfile=$W/server.pem --set listeners.wss.keyfile=$W/server.key \
    >/dev/null 2>&1 & pid=$!
  wait_port "${P[3]}"
  echo "# rep $rep"
  measure shardmq $pid ${P[0]} ${P[1]} ${P[2]} ${P[3]}
  kill $pid; wait $pid 2>/dev/null; rm -rf "$D"
  # Mosquitto
  Q=($(for i in 1 2 3 4; do free_port; done))
  cat > "$W/mq.conf" <<EOF
per_listener_settings false
allow_anonymous true
max_queued_messages 100000
max_inflight_messages 100
listener ${Q[0]} 127.0.0.1
listener ${Q[1]} 127.0.0.1
certfile $W/server.pem
keyfile $W/server.key
listener ${Q[2]} 127.0.0.1
protocol websockets
listener ${Q[3]} 127.0.0.1
protocol websockets
certfile $W/server.pem
keyfile $W/server.key
EOF
  $MOSQ -c "$W/mq.conf" >/dev/null 2>&1 & pid=$!
  wait_port "${Q[3]}"
  measure mosquitto $pid ${Q[0]} ${Q[1]} ${Q[2]} ${Q[3]}
  kill $pid; wait $pid 2>/dev/null
done
