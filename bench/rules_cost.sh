#!/bin/bash
# The publish path with 1,000 rules for other topics against none (rules created over REST).
# Usage: bench/rules_cost.sh (a broker binary built with cargo build --release; port 1883 free)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/target/release/shardmq-bench
BIN=$ROOT/target/release/shardmq
for rep in 1 2 3; do
 for mode in none rules1000; do
  D=$(mktemp -d); $BIN --set node.data_dir=$D >/dev/null 2>&1 & pid=$!; sleep 0.8
  if [ $mode = rules1000 ]; then
    for i in $(seq 1000); do curl -s -u admin:public -X POST localhost:8080/api/v3/rules -d "{\"name\":\"r$i\",\"for\":\"message.publish\",\"rawsql\":\"SELECT * FROM \\\"nomatch/$i/#\\\"\",\"actions\":[{\"name\":\"built_in:inspect_action\",\"params\":{}}]}" >/dev/null; done
    n=$(curl -s -u admin:public localhost:8080/api/v3/rules | python3 -c "import json,sys; print(len(json.load(sys.stdin)['data']))")
  else n=0; fi
  for sc in "-q 1 --window 20 pairs -n 8" "-q 0 fanin -n 16"; do
    $B -p 1883 --json /tmp/rb.json --duration 3 --warmup 1 $sc >/dev/null 2>&1
    echo "$mode($n) [$sc] $(python3 -c "import json; d=json.load(open('/tmp/rb.json')); print(round(d['delivered_per_s']), d['lost'])")"
  done
  kill $pid; wait $pid 2>/dev/null; rm -rf $D
 done
done
