# ShardMQ tasks. `just --list` shows them.

# Run the broker on its embedded defaults.
run:
    cargo run --release

# The whole test suite (what CI runs).
test:
    cargo test --workspace

# Formatting and lints, as CI expects them clean.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The pure core must build without the runtime (no glommio, no I/O).
check-pure:
    cargo check -p shardmq --lib --no-default-features

# Fuzz a target: decode, http_request or session (needs nightly and cargo-fuzz; see
# tests/fuzz/README.md). Extra arguments go to libFuzzer, e.g. -max_total_time=600.
fuzz target="decode" *args:
    cargo +nightly fuzz run {{target}} --fuzz-dir tests/fuzz -- {{args}}

# Pre-flight checks of this machine for the broker (io_uring, memlock, nofile).
tune-check:
    cargo run --release -- --check

# Side-by-side benchmark against Mosquitto and rumqttd, every broker on its defaults, broker
# and generator on shared cores and apart (installs the peers if missing; see BENCHMARKS.md).
# Knobs: DUR, WARMUP, REPS, PLACEMENTS, PARTS, BROKERS, IDLE, IOT, RTT (environment).
bench:
    bench/run.sh

# Throughput against shard count (ShardMQ on 1, 2, 4, 8 cores, the generator on the others;
# needs a machine with at least 16 cores; see BENCHMARKS.md).
bench-scale:
    bench/scale.sh

# TLS handshakes/s (full, resumed) and QoS 1 pairs over tcp/tls/ws/wss, next to Mosquitto
# (medians of `reps` runs).
bench-tls reps="3":
    bench/tls.sh {{reps}}

# Memory per connection next to Mosquitto: 10,000 idle clients, and 1,000 QoS 1 subscribers
# after a drained 300-message burst (`reps` runs).
bench-memory reps="3":
    cargo build --release --workspace
    bench/memory.sh {{reps}}

# Fan-out 1->16 and fan-in 16->1 at QoS 1, window 100: ShardMQ on 1 and 2 shards (defaults and
# max_inflight 100) next to rumqttd and Mosquitto (`reps` runs).
bench-fan reps="3":
    bench/fan.sh {{reps}}
