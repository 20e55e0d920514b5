#!/usr/bin/env python3
"""Prints the tables of a bench/apart.sh run (the folder it wrote): medians of the repetitions
per scenario and broker, throughput with the broker's CPU per 100 k messages, and the lone
client's round trips. Owns the aggregation only; never measures anything."""
import json
import os
import statistics
import sys
from collections import defaultdict


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, d=0):
    return "–" if v is None else f"{v:,.{d}f}"


def main(folder):
    ticks = {}
    for line in open(os.path.join(folder, "ticks.txt")):
        name, broker, rep, t = line.split()
        ticks[(name, broker, rep)] = int(t) / os.sysconf("SC_CLK_TCK")
    runs = defaultdict(list)
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".json"):
            continue
        name, broker, rep, _ = f.split(".")
        r = json.load(open(os.path.join(folder, f)))
        r["cpu_s"] = ticks.get((name, broker, rep))
        runs[(name, broker)].append(r)
    brokers = sorted({b for _, b in runs}, key=lambda b: (not b.startswith("shardmq"), b))
    names = []
    for n, _ in runs:
        if n not in names:
            names.append(n)
    if "rtt" in names:
        print("| broker | ping p50 / p99 µs | QoS 1 PUBACK p50 / p99 µs | QoS 2 p50 µs | CONNACK p50 µs |")
        print("|---|---|---|---:|---:|")
        for b in brokers:
            g = runs.get(("rtt", b), [])
            if not g:
                continue
            v = lambda k, q: med([r[k][q] for r in g])
            print(f"| {b} | {fmt(v('ping','p50_us'))} / {fmt(v('ping','p99_us'))} | "
                  f"{fmt(v('qos1','p50_us'))} / {fmt(v('qos1','p99_us'))} | {fmt(v('qos2','p50_us'))} | "
                  f"{fmt(v('connect','p50_us'))} |")
    for n in names:
        if n == "rtt":
            continue
        print(f"\n{n}: msgs/s, p50 / p99 µs, broker CPU s per 100 k msgs, lost (sum)\n")
        print("| broker | msgs/s | p50 / p99 µs | CPU s/100k | lost |")
        print("|---|---:|---|---:|---:|")
        for b in brokers:
            g = runs.get((n, b), [])
            if not g:
                continue
            cpu = med([r["cpu_s"] / r["delivered"] * 1e5 for r in g if r.get("cpu_s") and r.get("delivered")])
            print(f"| {b} | {fmt(med([r['delivered_per_s'] for r in g]))} | "
                  f"{fmt(med([r['latency']['p50_us'] for r in g]))} / {fmt(med([r['latency']['p99_us'] for r in g]))} | "
                  f"{fmt(cpu, 3)} | {sum(r['lost'] for r in g)} |")


if __name__ == "__main__":
    main(sys.argv[1])
