#!/usr/bin/env python3
"""Generate crates/core/tests/data/stats_reference.json, the scipy reference values for the experiment
statistics in crates/core/src/experiment (checked by crates/core/tests/experiment_stats.rs to ~1e-9 relative).

This is an independent implementation: distributions come from scipy.stats, the
two-proportion z-test is written out with scipy's normal, Holm is a hand-written loop, and
the mSPRT is checked *without* its closed form: the mixture likelihood ratio

    Lambda(theta0) = integral of phi(theta_hat; theta, V) / phi(theta_hat; theta0, V)
                     * phi(theta; theta0, tau^2) d theta

is integrated numerically with scipy.integrate.quad, and the confidence-sequence bounds are
the roots of Lambda(theta0) = 1/alpha found with scipy.optimize.brentq. The Rust side uses
the closed forms (Johari et al. 2022); agreement checks the algebra as well as the numbers.

The tables are fixed (no randomness), so the output is deterministic.

Usage (with the venv that scripts/test-python creates, or any Python with scipy):
    ~/.cache/rollgate/venv/bin/python scripts/gen_stats_reference.py
    ~/.cache/rollgate/venv/bin/python scripts/gen_stats_reference.py -o -   # to stdout
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import scipy
from scipy import integrate, optimize, stats

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "tests" / "data" / "stats_reference.json"

NORMAL_X = [-8.0, -5.0, -3.2, -1.959963984540054, -1.0, -0.25, 0.0, 0.3, 1.0, 1.6448536269514722,
            2.5, 3.7, 6.0, 9.5]
NORMAL_P = [1e-12, 1e-6, 0.0005, 0.005, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975, 0.995,
            0.9995, 0.999999]
CHI2 = [(0.001, 1), (0.5, 1), (3.841458820694124, 1), (10.8, 1), (30.0, 1), (60.0, 1), (1.0, 2),
        (13.8, 2), (45.0, 2), (2.5, 3), (16.27, 3), (40.0, 3), (7.0, 4), (25.0, 5), (50.0, 9)]

# (control conversions, control exposures, treatment conversions, treatment exposures, alpha)
Z_TESTS = [
    (100, 1000, 120, 1000, 0.05),
    (1000, 10000, 1100, 10000, 0.05),
    (1000, 10000, 950, 10000, 0.05),
    (523, 4870, 611, 5011, 0.05),
    (52, 20000, 81, 19800, 0.01),
    (4000, 5000, 4100, 5000, 0.05),
    (1, 1500, 9, 1500, 0.1),
    (300, 3000, 300, 3000, 0.05),
    (12345, 98765, 12800, 99001, 0.001),
]

# (exposures, weights)
SRM = [
    ([5000, 5000], [50, 50]),
    ([5100, 4900], [50, 50]),
    ([5200, 4800], [50, 50]),
    ([9050, 950], [90, 10]),
    ([3400, 3300, 3300], [34, 33, 33]),
    ([3500, 3300, 3200], [34, 33, 33]),
    ([2600, 2500, 2450, 2450], [25, 25, 25, 25]),
    ([101, 99], [50, 50]),
    ([20000, 5200, 5000], [60, 20, 20]),
]

HOLM = [
    [0.01, 0.04, 0.03, 0.005],
    [0.2, 0.01],
    [0.5],
    [0.001, 0.001, 0.7],
    [0.04, 0.03, 0.02, 0.01, 0.05],
    [0.9, 0.8, 0.0001],
]

# (control conversions, control exposures, treatment conversions, treatment exposures,
#  alpha, mixture relative lift)
MSPRT = [
    (100, 1000, 120, 1000, 0.05, 0.1),
    (1000, 10000, 1100, 10000, 0.05, 0.1),
    (1000, 10000, 1030, 10000, 0.05, 0.1),
    (1000, 10000, 920, 10000, 0.05, 0.2),
    (523, 4870, 611, 5011, 0.05, 0.1),
    (2000, 20000, 2000, 20000, 0.05, 0.1),
    (150, 30000, 190, 30000, 0.1, 0.3),
    (4000, 5000, 4100, 5000, 0.05, 0.05),
    (900, 9000, 1000, 9000, 0.01, 0.15),
    (1000, 10000, 1200, 10000, 0.05, 0.1),
    (2000, 20000, 1750, 20000, 0.05, 0.1),
    (3000, 30000, 3600, 30000, 0.001, 0.2),
    (40, 8000, 95, 8000, 0.05, 0.5),
]

# Whole sequential experiments: cumulative counts at successive looks, all past the minimum
# samples. The engine keeps, per treatment, the running minimum of the per-look p-values and
# the running intersection of the per-look intervals, then applies Holm to the running p-values.
SEQUENTIAL_EXPERIMENTS = [
    {
        "alpha": 0.05,
        "relative_lift": 0.1,
        "weights": [34, 33, 33],
        "looks": [
            [(2000, 200), (1950, 215), (1980, 240)],
            [(4000, 395), (3910, 430), (3950, 480)],
            [(6000, 610), (5890, 620), (5940, 730)],
            [(8000, 800), (7850, 815), (7920, 1000)],
        ],
    },
    {
        "alpha": 0.05,
        "relative_lift": 0.1,
        "weights": [50, 50],
        "looks": [
            [(5000, 500), (5000, 560)],
            [(10000, 1000), (10000, 1160)],
            [(15000, 1520), (15000, 1640)],
        ],
    },
]

# Whole fixed-method experiments: (variants [(name, weight, exposures, conversions)], alpha).
# Every variant is at the planned size, so the engine runs its z-tests and Holm.
FIXED_EXPERIMENTS = [
    ([("control", 50, 10000, 1000), ("b", 50, 10000, 1090)], 0.05),
    ([("control", 34, 6800, 680), ("b", 33, 6600, 700), ("c", 33, 6600, 745)], 0.05),
    ([("control", 25, 5000, 500), ("b", 25, 5000, 560), ("c", 25, 5000, 540), ("d", 25, 5000, 470)], 0.05),
    ([("control", 90, 9000, 270), ("b", 10, 1000, 45)], 0.05),
]


def z_test(x_a: int, n_a: int, x_b: int, n_b: int, alpha: float) -> dict:
    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_b - p_a
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = diff / se_pooled
    p = 2 * stats.norm.sf(abs(z))
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    crit = stats.norm.ppf(1 - alpha / 2)
    return {"difference": diff, "z": z, "p_value": float(p), "lower": diff - crit * se, "upper": diff + crit * se}


def holm(p_values: list[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def mixture_log_lr(theta_hat: float, variance: float, tau2: float, theta0: float) -> float:
    """ln Lambda(theta0) by numerical integration over the mixing distribution."""
    tau = math.sqrt(tau2)
    shift = (theta_hat - theta0) ** 2 / (2 * variance)

    def log_integrand(theta: float) -> float:
        return -((theta_hat - theta) ** 2) / (2 * variance) + float(stats.norm.logpdf(theta, theta0, tau))

    # The integrand is a Gaussian bump around the posterior mean; integrate over +-40 of its
    # standard deviations, scaled by its value at that centre so nothing underflows.
    post_var = variance * tau2 / (variance + tau2)
    centre = theta0 + (theta_hat - theta0) * tau2 / (variance + tau2)
    half = 40 * math.sqrt(post_var)
    peak = log_integrand(centre)
    value, _ = integrate.quad(lambda t: math.exp(log_integrand(t) - peak), centre - half, centre + half,
                              points=[centre], epsabs=0.0, epsrel=1e-13, limit=500)
    return shift + peak + math.log(value)


def msprt(x_a: int, n_a: int, x_b: int, n_b: int, alpha: float, relative_lift: float) -> dict:
    p_a, p_b = x_a / n_a, x_b / n_b
    theta_hat = p_b - p_a
    variance = p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    tau2 = (relative_lift * (x_a + x_b) / (n_a + n_b)) ** 2
    log_lr = mixture_log_lr(theta_hat, variance, tau2, 0.0)
    target = math.log(1 / alpha)

    def excess(theta0: float) -> float:
        return mixture_log_lr(theta_hat, variance, tau2, theta0) - target

    reach = 50 * math.sqrt(variance + tau2)
    lower = optimize.brentq(excess, theta_hat - reach, theta_hat, xtol=1e-17, rtol=1e-15, maxiter=500)
    upper = optimize.brentq(excess, theta_hat, theta_hat + reach, xtol=1e-17, rtol=1e-15, maxiter=500)
    return {
        "difference": theta_hat,
        "variance": variance,
        "tau_squared": tau2,
        "log_likelihood_ratio": log_lr,
        "p_value": min(1.0, math.exp(-log_lr)),
        "lower": lower,
        "upper": upper,
    }


def fixed_experiment(variants: list[tuple], alpha: float) -> dict:
    (_, _, n_c, x_c) = variants[0]
    tests = [z_test(x_c, n_c, x, n, alpha) for (_, _, n, x) in variants[1:]]
    adjusted = holm([t["p_value"] for t in tests])
    exposures = [n for (_, _, n, _) in variants]
    weights = [w for (_, w, _, _) in variants]
    total = sum(exposures)
    expected = [total * w / sum(weights) for w in weights]
    chi = stats.chisquare(exposures, expected)
    return {
        "variants": [{"name": name, "weight": w, "exposures": n, "conversions": x} for (name, w, n, x) in variants],
        "alpha": alpha,
        "treatments": [
            {"p_value": t["p_value"], "adjusted_p_value": a, "lower": t["lower"], "upper": t["upper"]}
            for t, a in zip(tests, adjusted)
        ],
        "srm_statistic": float(chi.statistic),
        "srm_p_value": float(chi.pvalue),
    }


def sequential_experiment(case: dict) -> dict:
    alpha, lift = case["alpha"], case["relative_lift"]
    k = len(case["weights"])
    p_values = [1.0] * (k - 1)
    intervals = [[-1.0, 1.0] for _ in range(k - 1)]
    for look in case["looks"]:
        (n_c, x_c) = look[0]
        for i, (n, x) in enumerate(look[1:]):
            result = msprt(x_c, n_c, x, n, alpha, lift)
            p_values[i] = min(p_values[i], result["p_value"])
            intervals[i] = [max(intervals[i][0], result["lower"]), min(intervals[i][1], result["upper"])]
    adjusted = holm(p_values)
    return {
        **case,
        "looks": [[list(arm) for arm in look] for look in case["looks"]],
        "treatments": [{"p_value": p, "adjusted_p_value": a, "lower": lo, "upper": hi}
                       for p, a, (lo, hi) in zip(p_values, adjusted, intervals)],
    }


def build() -> dict:
    srm_cases = []
    for exposures, weights in SRM:
        total = sum(exposures)
        expected = [total * w / sum(weights) for w in weights]
        result = stats.chisquare(exposures, expected)
        srm_cases.append({"exposures": exposures, "weights": weights, "statistic": float(result.statistic),
                          "p_value": float(result.pvalue)})
    return {
        "generator": "scripts/gen_stats_reference.py",
        "scipy": scipy.__version__,
        "normal": [{"x": x, "cdf": float(stats.norm.cdf(x)), "sf": float(stats.norm.sf(x))} for x in NORMAL_X],
        "normal_quantile": [{"p": p, "x": float(stats.norm.ppf(p))} for p in NORMAL_P],
        "chi_square": [{"x": x, "df": df, "sf": float(stats.chi2.sf(x, df))} for x, df in CHI2],
        "z_tests": [{"x_a": xa, "n_a": na, "x_b": xb, "n_b": nb, "alpha": alpha, **z_test(xa, na, xb, nb, alpha)}
                    for xa, na, xb, nb, alpha in Z_TESTS],
        "srm": srm_cases,
        "holm": [{"p_values": ps, "adjusted": holm(ps)} for ps in HOLM],
        "msprt": [{"x_a": xa, "n_a": na, "x_b": xb, "n_b": nb, "alpha": alpha, "relative_lift": lift,
                   **msprt(xa, na, xb, nb, alpha, lift)} for xa, na, xb, nb, alpha, lift in MSPRT],
        "fixed_experiments": [fixed_experiment(v, alpha) for v, alpha in FIXED_EXPERIMENTS],
        "sequential_experiments": [sequential_experiment(case) for case in SEQUENTIAL_EXPERIMENTS],
    }


def render(document: dict) -> str:
    """One case per line, keys in a fixed order: stable diffs."""

    def one(value: object) -> str:
        return json.dumps(value, allow_nan=False)

    lines = ["{"]
    keys = list(document)
    for k, key in enumerate(keys):
        value = document[key]
        comma = "," if k + 1 < len(keys) else ""
        if isinstance(value, list):
            lines.append(f"  {one(key)}: [")
            lines += [f"    {one(case)}{',' if i + 1 < len(value) else ''}" for i, case in enumerate(value)]
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {one(key)}: {one(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help='output path, or "-" for stdout')
    args = parser.parse_args(argv)
    text = render(build())
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
