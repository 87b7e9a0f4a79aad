#!/usr/bin/env python3
"""Micro-benchmark: nanoseconds per ``Flags.flag_enabled`` call (median of several runs).

    python sdk/python/bench.py [--calls 200000] [--runs 7]
    python sdk/python/bench.py --baseline OTHER/sdk/python/src [--runs 40]

Each run asks one flag at 50% for ``--calls`` distinct string user ids, so every call
hashes (no cache in the way). Other rows show the cheaper and costlier paths, and a flag with
targeting rules.

``--baseline`` compares with another copy of the SDK (for example the previous commit's:
``git archive HEAD~1 sdk/python | tar -x -C /tmp/base``) in this one process: the rows of
both run interleaved, round after round, so a host whose speed drifts (a shared VM) slows
both alike. It prints each side's median, the median (and range) of the per-round ratios,
and the ratio of the fastest rounds, the least disturbed on a loaded host.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import rollgate  # noqa: E402

PLAIN_FLAGS = {
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
TARGETED_FLAG = {
    "key": "targeted",
    "enabled": True,
    "percent": 50,
    "targeting": [
        {
            "name": "legal-hold",
            "conditions": [{"attribute": "country", "operator": "In", "values": ["DE", "FR"]}],
            "serve": {"enabled": False},
        },
        {
            "name": "enterprise",
            "conditions": [{"attribute": "plan", "operator": "In", "values": ["enterprise"]}],
            "serve": {"enabled": True},
        },
        {
            "name": "new-app",
            "conditions": [{"attribute": "appVersion", "operator": "SemverGte", "values": ["4.2"]}],
            "serve": {"percent": 50},
        },
    ],
}
# Matches no rule, then the third.
FALLS_THROUGH = {"country": "US", "plan": "free", "appVersion": "4.1.0"}
THIRD_RULE = {"country": "US", "plan": "free", "appVersion": "4.2.1"}


def write_document(directory: str, name: str, flags: dict, schema_version: int) -> str:
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"schemaVersion": schema_version, "flags": flags}, file)
    return path


def plain_rows(flags, module):
    return [
        ("flag_enabled, 50% flag, str user (hashes)", lambda u: flags.flag_enabled("new-checkout", u), "str"),
        ("flag_enabled, 50% flag, int user", lambda u: flags.flag_enabled("new-checkout", u), "int"),
        ("flag_enabled, 100% flag (no hash)", lambda u: flags.flag_enabled("full", u), "str"),
        ("flag_enabled, missing flag", lambda u: flags.flag_enabled("missing", u), "str"),
        ("evaluate, 50% flag", lambda u: flags.evaluate("new-checkout", u), "str"),
        ("variant, experiment (two hashes)", lambda u: flags.variant("experiment", u), "str"),
        ("evaluate_many, two flags", lambda u: flags.evaluate_many(("full", "new-checkout"), u), "str"),
        ("module flag_enabled, 50% flag", lambda u: module.flag_enabled("new-checkout", u), "str"),
    ]


def targeting_rows(flags):
    return [
        ("evaluate, 3 rules, no context", lambda u: flags.evaluate("targeted", u), "str"),
        ("evaluate, 3 rules, context matches none", lambda u: flags.evaluate("targeted", u, FALLS_THROUGH), "str"),
        ("evaluate, 3 rules, context matches the 3rd", lambda u: flags.evaluate("targeted", u, THIRD_RULE), "str"),
        ("flag_enabled, 3 rules, matches the 3rd", lambda u: flags.flag_enabled("targeted", u, THIRD_RULE), "str"),
    ]


def ns_per_call(call, users) -> float:
    start = time.perf_counter_ns()
    for user in users:
        call(user)
    return (time.perf_counter_ns() - start) / len(users)


def import_copy(source: str, directory: str):
    """The rollgate package under ``source``, imported as ``rollgate_baseline``."""
    shutil.copytree(os.path.join(source, "rollgate"), os.path.join(directory, "rollgate_baseline"))
    sys.path.insert(0, directory)
    return importlib.import_module("rollgate_baseline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per run")
    parser.add_argument("--runs", type=int, default=7, help="runs; the median is printed")
    parser.add_argument("--baseline", metavar="SRC", help="a directory holding another rollgate package to compare")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        # A version 1 document, which every version of the SDK reads, for the plain rows.
        plain_path = write_document(directory, "plain.json", PLAIN_FLAGS, 1)
        targeted_path = write_document(directory, "targeted.json", {"targeted": TARGETED_FLAG}, 2)
        flags = rollgate.Flags(plain_path)
        inputs = {"str": [f"user-{i:014}" for i in range(args.calls)], "int": list(range(args.calls))}
        os.environ["ROLLGATE_FLAGS_PATH"] = plain_path
        rollgate.reset_default_client()
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.calls} calls x {args.runs} runs")
        if args.baseline:
            baseline = import_copy(args.baseline, os.path.join(directory, "baseline"))
            baseline.reset_default_client()
            compare(plain_rows(baseline.Flags(plain_path), baseline), plain_rows(flags, rollgate), inputs, args.runs)
            return 0
        rows = plain_rows(flags, rollgate) + targeting_rows(rollgate.Flags(targeted_path))
        for name, call, kind in rows:
            ns = statistics.median(ns_per_call(call, inputs[kind]) for _ in range(args.runs))
            print(f"{ns:8.0f} ns/call  {name}")
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            print("(no prometheus-client: no row for a call inside a rollgate.metrics request scope)")
        else:
            from rollgate.metrics import CohortMetrics

            # One scope around every call: the first answer is recorded, the rest are looked up.
            with CohortMetrics(registry=CollectorRegistry()).request():
                ns = statistics.median(
                    ns_per_call(lambda u: flags.flag_enabled("new-checkout", u), inputs["str"])
                    for _ in range(args.runs)
                )
            print(f"{ns:8.0f} ns/call  flag_enabled, 50% flag, inside a request scope (rollgate.metrics)")
    return 0


def compare(baseline_rows, rows, inputs, runs: int) -> None:
    """Each round runs every row on both sides, alternating which goes first."""
    samples = {name: ([], []) for name, _, _ in rows}
    for round_number in range(runs):
        for (name, base_call, kind), (_, call, _) in zip(baseline_rows, rows):
            sides = [(0, base_call), (1, call)]
            for side, function in sides if round_number % 2 == 0 else reversed(sides):
                samples[name][side].append(ns_per_call(function, inputs[kind]))
    print(f"{'':44} {'baseline':>9} {'this':>9}  this/baseline: median of rounds (range); fastest")
    for name, (base, this) in samples.items():
        ratios = sorted(b / a for a, b in zip(base, this))
        print(
            f"{name:44} {statistics.median(base):6.0f} ns {statistics.median(this):6.0f} ns"
            f"  {statistics.median(ratios):.3f} ({ratios[0]:.2f}-{ratios[-1]:.2f}); {min(this) / min(base):.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
