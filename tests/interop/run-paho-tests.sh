#!/usr/bin/env bash
# Runs the Eclipse Paho interoperability suites (eclipse/paho.mqtt.testing, interoperability/:
# client_test.py for MQTT 3.1.1, client_test5.py for 5.0) against a ShardMQ started here on a
# free port. Not part of `cargo test` (they need that tree and Python 3).
#
#   tests/interop/run-paho-tests.sh PAHO_TESTING_SRC [SHARDMQ_BINARY] [-- EXTRA_BROKER_ARGS...]
#
# PAHO_TESTING_SRC: a checkout of eclipse/paho.mqtt.testing. SHARDMQ_BINARY: default
# target/release/shardmq. The broker runs on its defaults plus the two settings the suites
# assume of a broker under test: a Server Keep Alive of 60 s (their keepalive test expects one)
# and an ACL that refuses subscriptions to `test/nosubscribe` (their subscribe-failure test).
# EXTRA_BROKER_ARGS are appended, e.g. `-- --set shards.clean_sessions=accepting`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(realpath "${1:?usage: $0 PAHO_TESTING_SRC [SHARDMQ_BINARY] [-- ARGS...]}")
shift
bin=$(realpath "$here/../../target/release/shardmq")
if [ $# -gt 0 ] && [ "$1" != "--" ]; then bin=$(realpath "$1"); shift; fi
[ "${1:-}" = "--" ] && shift
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port)
printf '{deny, all, subscribe, ["test/nosubscribe"]}.\n{allow, all}.\n' > "$work/acl.conf"
"$bin" --mqtt "127.0.0.1:$port" --http "127.0.0.1:$http" --set node.data_dir="$work/data" \
    --set mqtt.server_keepalive=60 --set acl.file="$work/acl.conf" "$@" > "$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.1)" 2>/dev/null && break
    sleep 0.05
done
cd "$src/interoperability"
status=0
for suite in client_test.py client_test5.py; do
    echo "== $suite"
    # The suites' own option parsing cannot take a port (`-h` matches "--help", and
    # client_test.py hands `-p` on to unittest): the default port is replaced as they load.
    timeout 600 python3 -c "
import sys, __main__
sys.argv = ['$suite']
code = open('$suite').read().replace('port = 1883', 'port = $port', 1)
exec(compile(code, '$suite', 'exec'), __main__.__dict__)" > "$work/$suite.log" 2>&1 || status=1
    grep -E '^(Ran|OK|FAILED|ERROR: |FAIL: )' "$work/$suite.log" || true
done
exit $status
