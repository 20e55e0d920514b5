#!/usr/bin/env bash
# Runs Mosquitto's own broker tests (eclipse/mosquitto, test/broker) against ShardMQ: raw
# sockets, byte-level expectations written for another broker. Not part of `cargo test`
# (they need a Mosquitto source tree and Python 3); README.md here lists what passes and why
# the rest differ.
#
#   tests/interop/run-mosquitto-tests.sh MOSQUITTO_SRC [SHARDMQ_BINARY] [TEST...]
#
# MOSQUITTO_SRC: a checkout (or `git archive`) of eclipse/mosquitto with its test/ folder.
# SHARDMQ_BINARY: default target/release/shardmq. TEST: file names under test/broker
# (default: every connect, publish, subscribe, retain, session, will, listener, persistence,
# property and malformed-packet test, 01-05, 07 and 10-13; bridges, TLS, plugins and dynamic
# security are Mosquitto's own features).
#
# Each test starts "../../src/mosquitto" with -p PORT or -c FILE; here that is a wrapper that
# starts ShardMQ on the port, translating the conf options ShardMQ has an equivalent for
# (max_connections, upgrade_outgoing_qos, max_inflight_messages, max_queued_messages,
# max_packet_size, max_keepalive as the 5.0 Server Keep Alive, maximum_qos,
# retain_available false), with a data directory kept across restarts only when the conf
# asks for persistence and while the test keeps its persistence file. `mosquitto_shim.py`,
# imported with the tests' own helper module, relaxes two comparisons where MQTT leaves the
# broker a choice (see its doc). KEEP=1 keeps the work folder with each test's log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:?usage: $0 MOSQUITTO_SRC [SHARDMQ_BINARY] [TEST...]}
bin=$(realpath "${2:-$here/../../target/release/shardmq}")
shift $(( $# >= 2 ? 2 : 1 ))
work=$(mktemp -d)
trap 'pkill -f "$bin --mqtt 127.0.0.1:" 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "logs: $work" || rm -rf "$work"' EXIT
cp -r "$src/test" "$work/test"
mkdir -p "$work/src"
cat > "$work/src/mosquitto" <<WRAP
#!/usr/bin/env bash
port=1883; conf=
while [ \$# -gt 0 ]; do case \$1 in -p) port=\$2; shift 2;; -c) conf=\$2; shift 2;; *) shift;; esac; done
extra=()
data=\$(mktemp -d "$work/data.XXXX")
if [ -n "\$conf" ] && [ -f "\$conf" ]; then
  p=\$(awk '/^(listener|port) [0-9]+/{print \$2; exit}' "\$conf" | tr -d '\r'); [ -n "\$p" ] && port=\$p
  while read -r k v; do
    v=\${v%\$'\r'}
    case \$k in
      max_connections) extra+=(--set listeners.tcp.max_connections=\$v);;
      upgrade_outgoing_qos) extra+=(--set mqtt.upgrade_qos=\$v);;
      max_inflight_messages) extra+=(--set mqtt.max_inflight=\$v);;
      max_queued_messages) extra+=(--set mqtt.max_mqueue=\$v);;
      max_packet_size) extra+=(--set mqtt.max_packet_size=\$v);;
      max_keepalive) extra+=(--set mqtt.server_keepalive=\$v);;
      maximum_qos) extra+=(--set mqtt.max_qos_allowed=\$v);;
      retain_available) [ "\$v" = false ] && extra+=(--set retainer.enable=false);;
      persistence) [ "\$v" = true ] && persist=1;;
      persistence_file) pfile=\$v;;
    esac
  done < "\$conf"
  # Kept across restarts while the test keeps its persistence file (tests remove it to start
  # afresh); the file itself only marks that.
  if [ -n "\${persist:-}" ]; then
    pfile=\${pfile:-mosquitto.db}; data="$work/kept.\$port.\${pfile//\//_}"
    [ -e "\$pfile" ] || rm -rf "\$data"
    mkdir -p "\$data"; touch "\$pfile"
  fi
fi
exec "$bin" --mqtt 127.0.0.1:\$port --http 127.0.0.1:\$((port + 20000)) --set node.data_dir=\$data "\${extra[@]}"
WRAP
chmod +x "$work/src/mosquitto"
cd "$work/test/broker"
# Every test (and helper process) imports mosq_test_helper first: the shim comes in with it.
printf '\nsys.path.insert(0, %s)\nimport mosquitto_shim\n' "'$here'" >> mosq_test_helper.py
if [ $# -gt 0 ]; then tests=("$@"); else
  mapfile -t tests < <(ls | grep -E '^(0[1-5]|07|1[0-3])-.*\.py$' | grep -v helper)
fi
pass=0; fail=()
for t in "${tests[@]}"; do
  if timeout 60 python3 -u "$t" > "$work/$t.log" 2>&1; then
    pass=$((pass + 1)); echo "pass $t"
  else
    fail+=("$t"); echo "FAIL $t"; grep -v 'INFO\|WARN\|fix: \|^$' "$work/$t.log" | sed 's/^/    /' | head -4 || true
  fi
  pkill -f "$bin --mqtt 127.0.0.1:" 2>/dev/null || true
done
echo "$pass passed, ${#fail[@]} failed of ${#tests[@]}"
