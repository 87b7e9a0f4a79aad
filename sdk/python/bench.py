#!/usr/bin/env python3
"""Micro-benchmark: nanoseconds per ``Flags.flag_enabled`` call (median of several runs).

    python sdk/python/bench.py [--calls 200000] [--runs 7]

Each run asks one flag at 50% for ``--calls`` distinct string user ids, so every call
hashes (no cache in the way). Other rows show the cheaper and costlier paths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import rollgate  # noqa: E402


def write_document(directory: str) -> str:
    flags = {
        "new-checkout": {"key": "new-checkout", "enabled": True, "percent": 50},
        "full": {"key": "full", "enabled": True, "percent": 100},
        "experiment": {
            "key": "experiment",
            "enabled": True,
            "percent": 100,
            "variants": [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}],
            "experiment": {"coverage": 50, "salt": "s1"},
        },
    }
    path = os.path.join(directory, "flags.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"schemaVersion": 1, "flags": flags}, file)
    return path


def ns_per_call(call, users, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for user in users:
            call(user)
        samples.append((time.perf_counter_ns() - start) / len(users))
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per run")
    parser.add_argument("--runs", type=int, default=7, help="runs; the median is printed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        flags = rollgate.Flags(write_document(directory))
        users = [f"user-{i:014}" for i in range(args.calls)]
        int_users = list(range(args.calls))
        rows = [
            ("flag_enabled, 50% flag, str user (hashes)", lambda u: flags.flag_enabled("new-checkout", u), users),
            ("flag_enabled, 50% flag, int user", lambda u: flags.flag_enabled("new-checkout", u), int_users),
            ("flag_enabled, 100% flag (no hash)", lambda u: flags.flag_enabled("full", u), users),
            ("flag_enabled, missing flag", lambda u: flags.flag_enabled("missing", u), users),
            ("evaluate, 50% flag", lambda u: flags.evaluate("new-checkout", u), users),
            ("variant, experiment (two hashes)", lambda u: flags.variant("experiment", u), users),
            ("rollgate.flag_enabled (module level)", lambda u: rollgate.flag_enabled("new-checkout", u), users),
        ]
        os.environ["ROLLGATE_FLAGS_PATH"] = flags.path
        rollgate.reset_default_client()
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.calls} calls x {args.runs} runs")
        for name, call, inputs in rows:
            print(f"{ns_per_call(call, inputs, args.runs):8.0f} ns/call  {name}")
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            print("(no prometheus-client: no row for a call inside a rollgate.metrics request scope)")
        else:
            from rollgate.metrics import CohortMetrics

            # One scope around every call: the first answer is recorded, the rest are looked up.
            with CohortMetrics(registry=CollectorRegistry()).request():
                ns = ns_per_call(lambda u: flags.flag_enabled("new-checkout", u), users, args.runs)
            print(f"{ns:8.0f} ns/call  flag_enabled, 50% flag, inside a request scope (rollgate.metrics)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
