#!/bin/bash
# Durability cost per persistence mode: 8 QoS 1 pairs (window 20) with persistent sessions, CPU per
# message from /proc; a fresh broker and data directory per run. Usage: bench/durability.sh REPS
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/target/release/shardmq-bench
BIN=$ROOT/target/release/shardmq
cpu(){ awk '{print $14+$15}' /proc/$1/stat; }
for rep in $(seq $1); do
 for mode in off never interval always clean; do
  D=$(mktemp -d)
  case $mode in
   off) sets="--set persistence.enable=false"; pflag=--persistent;;
   clean) sets=""; pflag="";;
   *) sets="--set persistence.fsync=$mode"; pflag=--persistent;;
  esac
  $BIN --set node.data_dir=$D $sets >/dev/null 2>&1 & pid=$!; sleep 0.8
  a=$(cpu $pid)
  $B -p 1883 --json /tmp/pers.json --duration 3 --warmup 1 $pflag -q 1 --window 20 pairs -n 8 >/dev/null 2>&1
  b=$(cpu $pid)
  du=$(du -sb $D/journal 2>/dev/null | cut -f1)
  python3 -c "import json; d=json.load(open('/tmp/pers.json')); n=d['delivered_per_s']*3; print('$mode', round(d['delivered_per_s']), d['lost'], 'cpu_us_per_msg', round(($b-$a)*10000/max(1,d['delivered']) ,2) if 'delivered' in d else '?', 'journal_bytes', '$du')"
  kill $pid; wait $pid 2>/dev/null; rm -rf $D
 done
done
