#!/usr/bin/env python3
"""Prints the side-by-side tables from bench/run.sh's runs.jsonl: medians of the repetitions,
one Markdown table per peer and mode, with the ShardMQ/peer ratio of each column.

Owns: the aggregation (medians) and the table layout. Never measures anything."""
import json
import statistics
import sys
from collections import defaultdict


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


# The lone-client probes: a client measured from its first round trip, and one that pinged
# unmeasured for a while first (`--settle`).
RTT_PROBES = ("rtt", "rtt_settled")


def print_rtt(groups, mode, probe):
    brokers = [b for b in ("shardmq", "mosquitto", "rumqttd") if groups.get((mode, probe, b))]
    if not brokers:
        return
    settle = med(groups[(mode, probe, brokers[0])], "settle_s")
    what = (f"connected a while ({fmt(settle, 1)} s of unmeasured pings first)" if settle
            else "measured from its first round trip")
    print(f"\n### A lone client, one request at a time, {what} — placement `{mode}`"
          " (medians, µs)\n")
    print("| broker | ping p50 / p99 | QoS 1 PUBACK p50 / p99 | QoS 1 sequential msgs/s"
          " | QoS 2 PUBCOMP p50 | SUBACK p50 / p99 | CONNACK p50 / p99 |")
    print("|---|---|---|---:|---:|---|---|")
    for b in brokers:
        g = groups[(mode, probe, b)]
        print(f"| {b} | {fmt(med(g, 'ping_p50_us'))} / {fmt(med(g, 'ping_p99_us'))}"
              f" | {fmt(med(g, 'qos1_p50_us'))} / {fmt(med(g, 'qos1_p99_us'))}"
              f" | {fmt(med(g, 'qos1_per_s'))} | {fmt(med(g, 'qos2_p50_us'))}"
              f" | {fmt(med(g, 'sub_p50_us'))} / {fmt(med(g, 'sub_p99_us'))}"
              f" | {fmt(med(g, 'connect_p50_us'))} / {fmt(med(g, 'connect_p99_us'))} |")


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    windows = {r["broker"]: r["window"] for r in runs if r.get("scenario") == "window"}
    if windows:
        print("Default in-flight window towards a subscriber, measured: "
              + ", ".join(f"{b} {w}" for b, w in windows.items()))
    runs = [r for r in runs if "mode" in r]
    groups = defaultdict(list)
    failed = defaultdict(int)
    for r in runs:
        key = (r["mode"], r["scenario"], r["broker"])
        if r.get("failed"):
            failed[key] += 1
            continue
        if "cpu_s" in r and r.get("delivered"):
            r["cpu_per_100k"] = r["cpu_s"] / r["delivered"] * 1e5
        r["hwm_mb"] = r["hwm_kb"] / 1024 if "hwm_kb" in r else None
        groups[key].append(r)
    modes = sorted({k[0] for k in groups} | {k[0] for k in failed})
    scenarios = []
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    peers = [b for b in ("mosquitto", "rumqttd") if any(k[2] == b for k in groups)]
    for mode in modes:
        for probe in RTT_PROBES:
            print_rtt(groups, mode, probe)
        rows = [s for s in scenarios if s not in ("idle", *RTT_PROBES)
                and any(groups.get((mode, s, b)) for b in ("shardmq", *peers))]
        idle = any(groups.get((mode, "idle", b)) for b in ("shardmq", *peers))
        for peer in peers if rows or idle else []:
            print(f"\n### ShardMQ vs {peer} — placement `{mode}` (medians)\n")
            print("| scenario | msgs/s ShardMQ | msgs/s peer | ratio | p50/p99/p99.9 µs ShardMQ"
                  " | p50/p99/p99.9 µs peer | CPU s/100k ShardMQ | CPU s/100k peer | CPU ratio"
                  " | peak RSS MB S / P | lost S / P (sum of reps) |")
            print("|---|---:|---:|---:|---|---|---:|---:|---:|---|---|")
            for s in scenarios:
                if s in ("idle", *RTT_PROBES):
                    continue
                a, b = groups.get((mode, s, "shardmq"), []), groups.get((mode, s, peer), [])
                if not a and not b:
                    continue
                lat = lambda rows: "/".join(fmt(med(rows, k)) for k in ("p50_us", "p99_us", "p999_us"))
                fa, fb = failed[(mode, s, "shardmq")], failed[(mode, s, peer)]
                note = f" ({fa}/{fb} failed)" if fa or fb else ""
                print(f"| {s}{note} | {fmt(med(a, 'delivered_per_s'))} | {fmt(med(b, 'delivered_per_s'))}"
                      f" | {ratio(med(a, 'delivered_per_s'), med(b, 'delivered_per_s'))}"
                      f" | {lat(a)} | {lat(b)} | {fmt(med(a, 'cpu_per_100k'), 3)}"
                      f" | {fmt(med(b, 'cpu_per_100k'), 3)}"
                      f" | {ratio(med(a, 'cpu_per_100k'), med(b, 'cpu_per_100k'))}"
                      f" | {fmt(med(a, 'hwm_mb'), 1)} / {fmt(med(b, 'hwm_mb'), 1)}"
                      f" | {fmt(sum(r['lost'] for r in a))} / {fmt(sum(r['lost'] for r in b))} |")
            a, b = groups.get((mode, "idle", "shardmq"), []), groups.get((mode, "idle", peer), [])
            if a or b:
                print(f"\nIdle connections ({mode}): bytes/connection ShardMQ {fmt(med(a, 'bytes_per_conn'))}"
                      f", {peer} {fmt(med(b, 'bytes_per_conn'))} (ratio {ratio(med(a, 'bytes_per_conn'), med(b, 'bytes_per_conn'))});"
                      f" connects/s ShardMQ {fmt(med(a, 'connects_per_s'))}, {peer} {fmt(med(b, 'connects_per_s'))}"
                      f" (ratio {ratio(med(a, 'connects_per_s'), med(b, 'connects_per_s'))})")


if __name__ == "__main__":
    main(sys.argv[1])
