#!/usr/bin/env python3
"""Generate the cross-language test vectors in sdk/testdata/vectors.json.

This is an independent reference implementation of docs/evaluation.md. It uses only
Python's hashlib and big integers (``int(hexdigest, 16)`` is the whole 256-bit digest),
never either SDK, so the Rust and the Python SDK are both checked against it.

Output:
    {"generator": "scripts/gen_vectors.py",
     "bucketing":  [{"key", "user", "percent", "bucket", "rank", "threshold", "enabled"}, ...],
     "evaluation": [{"flag": <flag entry> | null, "user": str | null,
                     "enabled", "variant", "reason", "rank"}, ...]}
bucket = H mod 100 (the Django helper), rank = the 0.01% rank, threshold =
percent_threshold(percent), enabled = rank < threshold. An evaluation case whose flag is
null is a missing flag and names the key it looks up in "key"; its rank is reported only
for reason "percent", as the Rust SDK does.

The output is deterministic: every random choice comes from one seeded
``random.Random``, and the JSON is written in a fixed layout, one case per line.
``scripts/test-python`` regenerates the file and fails if it differs byte for byte.

Usage:
    scripts/gen_vectors.py                      # rewrite sdk/testdata/vectors.json
    scripts/gen_vectors.py -o /tmp/vectors.json # write elsewhere ("-" for stdout)
    scripts/gen_vectors.py --explain KEY USER [PERCENT]
                                                # print every step for one (key, user)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import string
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

GENERATOR = "scripts/gen_vectors.py"
SEED = 0x5EED_F1A6
RANK_SCALE = 10_000
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "sdk" / "testdata" / "vectors.json"


# --------------------------------------------------------------------------------------
# The reference rules
# --------------------------------------------------------------------------------------


def digest_int(text: str) -> int:
    """SHA-256 of the UTF-8 text, read as one 256-bit big-endian integer."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def rank_of(h: int) -> int:
    """f = H mod 10000; rank = (f mod 100)·100 + ⌊f/100⌋."""
    f = h % RANK_SCALE
    return (f % 100) * 100 + f // 100


def legacy_bucket(key: str, user: str) -> int:
    """The Django helper's bucket: int(sha256(f"{key}:{user}").hexdigest(), 16) % 100."""
    return digest_int(f"{key}:{user}") % 100


def rollout_rank(key: str, user: str) -> int:
    return rank_of(digest_int(f"{key}:{user}"))


def variant_rank(key: str, salt: str, user: str) -> int:
    return rank_of(digest_int(f"{key}:{salt}:variant:{user}"))


def round_half_away(x: float) -> int:
    """Round a non-negative float to the nearest integer, halves away from zero.

    This is Rust's ``f64::round``. Python's ``round`` rounds halves to even (12.5 → 12),
    so it is deliberately not used. ``Decimal(x)`` is the exact value of the double.
    """
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent_threshold(percent: float) -> int:
    """round(percent·100) clamped to 0..10000; NaN and <= 0 give 0, >= 100 gives 10000.

    ``percent * 100`` is one IEEE-754 double multiplication, as in the Rust SDK, and the
    product is then rounded exactly.
    """
    percent = float(percent)
    if percent != percent or percent <= 0:
        return 0
    if percent >= 100:
        return RANK_SCALE
    return round_half_away(percent * 100.0)


def assign_variant(flag: dict, user: str) -> str | None:
    variants = flag.get("variants") or []
    if not variants:
        return None
    experiment = flag.get("experiment")
    if experiment is not None:
        coverage = percent_threshold(experiment["coverage"])
        if coverage < RANK_SCALE and rollout_rank(flag["key"], user) >= coverage:
            return None
        salt = experiment["salt"]
    else:
        salt = flag["key"]
    arm = variant_rank(flag["key"], salt, user)
    cumulative = 0.0
    for variant in variants:
        cumulative += float(variant["weight"])  # the same left-to-right float sum
        if arm < percent_threshold(cumulative):
            return variant["name"]
    return variants[-1]["name"]


def evaluate(flag: dict | None, user: str | None) -> dict:
    """The full evaluation order; returns {enabled, variant, reason, rank}."""

    def result(enabled, reason, variant=None, rank=None):
        return {"enabled": enabled, "variant": variant, "reason": reason, "rank": rank}

    if flag is None:
        return result(False, "missing")
    if not flag["enabled"]:
        return result(False, "disabled")
    if flag.get("shippedVariant") is not None:
        return result(True, "shipped", variant=flag["shippedVariant"])
    threshold = percent_threshold(flag["percent"])
    if user is None:
        # Full rollout means a threshold of 10000 (percent >= 99.995), as for users.
        return result(True, "full-rollout") if threshold >= RANK_SCALE else result(False, "no-user")
    if user in (flag.get("allowedUsers") or []):
        return result(True, "allow-list", variant=assign_variant(flag, user))
    if threshold >= RANK_SCALE:
        return result(True, "full-rollout", variant=assign_variant(flag, user))
    rank = rollout_rank(flag["key"], user)
    if rank < threshold:
        return result(True, "percent", variant=assign_variant(flag, user), rank=rank)
    return result(False, "percent", rank=rank)


# --------------------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------------------

KEYS = [
    "checkout",
    "new-checkout",
    "search.v2",
    "pricing_page",
    "a",
    "k8s.rollout-flag_v1.2",
    "team-payments.card_form.v3",
    "x_y-z.w",
    "__dunder__",
    "dotted.key.with.many.parts",
    "UPPER-lower_Mixed.9",
    "flag-" + "long" * 40,
]

EDGE_USERS = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u0000",
    "\u200b",
    "\ufeff",
    "\u00a0",
    ":",
    "::",
    "a:b",
    "variant",
    ":variant:",
    "0",
    "-0",
    "00",
    "007",
    "-1",
    "1.0",
    "1e3",
    "null",
    "None",
    "undefined",
    "NaN",
    "true",
    "\\",
    '"',
    "'",
    "{}",
    "[]",
    "user@example.com",
    "550e8400-e29b-41d4-a716-446655440000",
]

UNICODE_USERS = [
    "🚀",
    "👩‍💻",  # woman technologist: ZWJ sequence
    "👍🏽",  # skin-tone modifier
    "🇩🇪",  # regional-indicator pair
    "🏳️‍🌈",
    "😀" * 7,
    "用户",
    "用户123",
    "测试用户-甲",
    "ユーザー",
    "ﾕｰｻﾞｰ",  # half-width katakana
    "사용자",
    "é",  # precomposed U+00E9
    "e\u0301",  # e + combining acute: a different id from the above
    "a\u0308\u0304",  # stacked combining marks
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319",  # zalgo
    "Ω",
    "Ω",  # U+2126 OHM SIGN, not U+03A9
    "ﬁ",  # ligature
    "ß",
    "İstanbul",
    "مستخدم",
    "משתמש",
    "\u202eevil",  # right-to-left override
    "पहचान",
    "ผู้ใช้",
    "Ελληνικά",
    "кириллица",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",  # astral-plane math letters
    "𠜎𠜱𠝹",  # CJK extension B
    "\U0010fffd",
]

WHOLE_PERCENTS = [0, 1, 5, 10, 25, 33, 50, 66, 75, 90, 99, 100]
FRACTIONAL_PERCENTS = [
    0.01,
    0.004,  # rounds to threshold 0
    0.005,  # 0.005·100 is 0.5 in floating point: rounds half away to 1
    0.125,  # 12.5: Rust rounds to 13 (Python's round() would give 12)
    0.375,
    0.5,
    2.5,
    12.345,
    12.5,
    33.33,
    49.995,
    50.005,
    66.67,
    99.9,
    99.99,
    99.994,
    99.995,  # rounds to 10000
    99.999,
]
OUT_OF_RANGE_PERCENTS = [-5, -0.01, 100.01, 250]
# Percents whose threshold depends on how round(p·100) is computed. The product p*100.0
# is one double multiplication (as in Rust), then rounded half away from zero:
#  - 0.005, 0.025, 0.125, 0.045: the double product is exactly x.5 with x even, so
#    round-half-to-even (Python's round) would give one less;
#  - 0.015, 0.045, 0.105, 0.295, 49.995: the decimal literal's double is just below the
#    half, but the double product rounds up to exactly x.5, so rounding the exact product
#    would give one less.
ROUNDING_PERCENTS = [0.004, 0.005, 0.015, 0.025, 0.045, 0.105, 0.125, 0.295, 0.375, 12.345, 49.995, 50.005, 99.995]


def random_text(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


UNICODE_ALPHABET = (
    string.ascii_letters
    + string.digits
    + "-_.:/ "
    + "éüßøåçñ"
    + "用户测试数据中文字"
    + "ユーザーテスト"
    + "사용자"
    + "\u0301\u0308\u0323"
    + "🚀😀👍🎉"
)


def user_pool(rng: random.Random) -> list[str]:
    users: list[str] = []
    users += EDGE_USERS
    users += UNICODE_USERS
    # Numeric ids, as str(int) of Django primary keys.
    users += [str(n) for n in range(0, 40)]
    users += [str(rng.randrange(10**3, 10**7)) for _ in range(120)]
    users += [str(rng.randrange(2**31, 2**63)) for _ in range(30)]
    users += [str(10**k) for k in range(1, 40, 3)]
    users += ["-" + str(rng.randrange(1, 10**6)) for _ in range(5)]
    # Typical string ids.
    users += [f"user-{rng.randrange(10**6)}" for _ in range(120)]
    users += [
        random_text(rng, rng.randrange(1, 40), string.ascii_letters + string.digits + "-_.@")
        for _ in range(80)
    ]
    users += [random_text(rng, rng.randrange(1, 24), UNICODE_ALPHABET) for _ in range(60)]
    return users


def long_users(rng: random.Random) -> list[str]:
    users = []
    for i in range(24):
        size = rng.randrange(1024, 10 * 1024 + 1)  # target size in UTF-8 bytes
        alphabet = string.ascii_letters + string.digits if i % 2 == 0 else UNICODE_ALPHABET
        text = ""
        while len(text.encode("utf-8")) < size:
            text += random_text(rng, 64, alphabet)
        users.append(text)
    users.append("x" * 1024)
    users.append("7" * 10240)
    return users


def bucketing_case(key: str, user: str, percent) -> dict:
    h = digest_int(f"{key}:{user}")
    rank = rank_of(h)
    return {
        "key": key,
        "user": user,
        "percent": percent,
        "bucket": h % 100,
        "rank": rank,
        "threshold": percent_threshold(percent),
        "enabled": rank < percent_threshold(percent),
    }


def find_users(rank_of_user, wanted: set, prefix: str, limit: int = 400_000) -> dict:
    """The first user "<prefix>-<n>" for each wanted rank (those found within the limit)."""
    found: dict = {}
    for n in range(limit):
        if len(found) == len(wanted):
            break
        user = f"{prefix}-{n}"
        rank = rank_of_user(user)
        if rank in wanted and rank not in found:
            found[rank] = user
    return found


def bucketing_cases(rng: random.Random) -> list[dict]:
    cases = []
    percents = WHOLE_PERCENTS + FRACTIONAL_PERCENTS + ROUNDING_PERCENTS
    users = user_pool(rng)
    for i, user in enumerate(users):
        # Every user gets a whole percent and a fractional percent, cycling through both
        # lists, plus two random (key, percent) pairs.
        cases.append(bucketing_case(KEYS[i % len(KEYS)], user, WHOLE_PERCENTS[i % len(WHOLE_PERCENTS)]))
        cases.append(
            bucketing_case(KEYS[(i + 5) % len(KEYS)], user, FRACTIONAL_PERCENTS[i % len(FRACTIONAL_PERCENTS)])
        )
        for _ in range(2):
            if rng.random() < 0.5:
                percent = rng.choice(percents)
            else:
                percent = rng.randrange(0, 10001) / 100  # any 0.01 step
            cases.append(bucketing_case(rng.choice(KEYS), user, percent))
    for user in long_users(rng):
        cases.append(bucketing_case(rng.choice(KEYS), user, rng.choice(percents)))
    for percent in OUT_OF_RANGE_PERCENTS:
        for user in ("1", "user-42", "🚀"):
            cases.append(bucketing_case("checkout", user, percent))
    # Boundary ranks: users whose rank is exactly at, or one below, a threshold, so that
    # "<" versus "<=" and every rounding choice above are pinned down.
    checked = [0.01, 0.02, 1, 33.33, 50, 99.99] + ROUNDING_PERCENTS
    wanted = {0, 1, 99, 100, 3332, 3333, 4999, 5000, 9998, 9999}
    for percent in checked:
        threshold = percent_threshold(percent)
        wanted |= {rank for rank in (threshold - 1, threshold) if 0 <= rank < RANK_SCALE}
    found = find_users(lambda user: rollout_rank("boundary.flag", user), wanted, "boundary")
    for percent in checked:
        threshold = percent_threshold(percent)
        for rank in sorted(found):
            if rank in (0, 9999) or rank in (threshold - 1, threshold):
                cases.append(bucketing_case("boundary.flag", found[rank], percent))
    return cases


def flag(key, *, enabled=True, percent=100, allowed=(), variants=(), experiment=None, shipped=None, **extra):
    entry = {
        "key": key,
        "enabled": enabled,
        "percent": percent,
        "allowedUsers": list(allowed),
        "variants": [{"name": name, "weight": weight} for name, weight in variants],
    }
    if experiment is not None:
        entry["experiment"] = {"coverage": experiment[0], "salt": experiment[1]}
    if shipped is not None:
        entry["shippedVariant"] = shipped
    entry["phase"] = extra.pop("phase", "Static")
    entry["generation"] = extra.pop("generation", 1)
    entry["updatedAt"] = extra.pop("updatedAt", "2025-01-01T00:00:00Z")
    entry.update(extra)  # unknown fields: readers must ignore them
    return entry


def evaluation_flags(rng: random.Random) -> list[tuple[dict | None, list]]:
    """(flag, users) pairs; a flag of None is a missing flag (the key is in `users[0]`)."""
    ab = [("control", 50), ("treatment", 50)]
    thirds = [("a", 33.33), ("b", 33.33), ("c", 33.34)]
    four = [("red", 10.5), ("green", 20.25), ("blue", 30.125), ("gray", 39.125)]
    halves = [("left", 10.005), ("right", 89.995)]  # cumulative 1000.5 ranks: rounds up
    tiny = [("rare", 0.01), ("common", 99.99)]
    with_zero = [("never", 0), ("x", 60), ("also-never", 0), ("y", 40)]
    eighths = [("p", 12.5), ("q", 12.5), ("r", 75)]
    flags = [
        flag("off.flag", enabled=False, percent=100, allowed=["vip"], variants=ab, phase="Killed"),
        flag("off.shipped", enabled=False, percent=100, variants=ab, shipped="treatment"),
        flag("zero.allow", percent=0, allowed=["vip", "staff-1", "🚀"]),
        flag("full", percent=100, allowed=["vip"]),
        flag("full.int", percent=100.0),
        flag("half", percent=50, allowed=["vip"]),
        flag("third", percent=33.33),
        flag("tiny", percent=0.01),
        flag("below.resolution", percent=0.004),
        flag("half.up", percent=0.005),
        flag("eighth", percent=12.5),
        flag("nearly.all", percent=99.99),
        flag("rounds.to.full", percent=99.995),
        flag("rounds.to.full2", percent=99.999),
        flag("one_two.three-four", percent=12.345, phase="Progressing", generation=7),
        flag("ab.plain", percent=100, variants=ab),
        flag("ab.half", percent=50, variants=ab, allowed=["vip"]),
        flag("thirds", percent=100, variants=thirds),
        flag("four.arms", percent=75, variants=four, allowed=["vip"]),
        flag("halves", percent=100, variants=halves),
        flag("tiny.arm", percent=100, variants=tiny),
        flag("zero.weight", percent=100, variants=with_zero),
        flag("eighths", percent=100, variants=eighths),
        flag("exp.ten", percent=10, variants=ab, experiment=(10, "s1"), phase="Experimenting"),
        flag("exp.cov30.full", percent=100, variants=ab, experiment=(30, "salt-2024")),
        flag("exp.cov0", percent=100, variants=thirds, experiment=(0, "zero"), allowed=["vip"]),
        flag("exp.cov100", percent=60, variants=four, experiment=(100, "all")),
        flag("exp.cov.tiny", percent=100, variants=ab, experiment=(0.01, "t")),
        flag("exp.cov.frac", percent=80, variants=halves, experiment=(33.33, "frac")),
        flag("exp.empty.salt", percent=100, variants=ab, experiment=(50, "")),
        flag("exp.unicode.salt", percent=100, variants=thirds, experiment=(50, "sél-🚀")),
        flag("exp.allow", percent=0, variants=ab, experiment=(20, "s"), allowed=["vip", "staff-1"]),
        flag(
            "exp.allow.many",
            percent=5,
            variants=four,
            experiment=(50, "many"),
            allowed=[f"tester-{i}" for i in range(16)],
        ),
        flag("exp.rounds.full", percent=100, variants=ab, experiment=(99.995, "r")),
        flag("shipped", percent=30, variants=ab, experiment=(30, "s1"), shipped="treatment", phase="Shipped"),
        flag("shipped.plain", percent=0, variants=thirds, shipped="b"),
        flag("round.half.even", percent=0.125),  # threshold 13, not 12
        flag("round.float.product", percent=0.015),  # threshold 2, not 1
        flag("round.both", percent=0.045, allowed=["vip"]),  # threshold 5
        flag("round.mid", percent=49.995),
        flag(
            "round.arms",
            percent=100,
            variants=[("first", 0.025), ("second", 0.1), ("third", 49.87), ("fourth", 50.005)],
        ),  # bounds 3, 13, 5000, 10000
        flag("round.coverage", percent=100, variants=ab, experiment=(0.015, "cov")),  # coverage rank 2
        flag("round.coverage2", percent=50, variants=thirds, experiment=(12.345, "cov2")),
        flag("future.fields", percent=50, variants=ab, futureField={"nested": [1, 2]}, owner="team-x"),
    ]
    # A few random flags with 2–4 arms of random 0.01-step weights.
    for i in range(6):
        arms = rng.randrange(2, 5)
        cuts = sorted(rng.sample(range(1, 10_000), arms - 1))
        bounds = [0] + cuts + [10_000]
        variants = [(f"arm{j}", (bounds[j + 1] - bounds[j]) / 100) for j in range(arms)]
        percent = rng.choice([20, 45.5, 100, 66.66])
        experiment = (rng.choice([25, 50.5, 100]), f"rs{i}") if i % 2 else None
        flags.append(flag(f"random.{i}", percent=percent, variants=variants, experiment=experiment))

    common = ["vip", "staff-1", "🚀", "", "0", "42", "用户", "e\u0301"]
    pairs: list[tuple[dict | None, list]] = []
    for entry in flags:
        allowed = [user for user in entry["allowedUsers"] if user not in common]
        users: list = [None] + common + allowed + [f"user-{rng.randrange(10**6)}" for _ in range(12)]
        users += [user for user in boundary_users(entry) if user not in users]
        pairs.append((entry, users))
    pairs.append((None, ["missing.flag", None, "vip", "42", "🚀"]))
    pairs.append((None, ["checkout", "user-1", None]))
    return pairs


def boundary_users(entry: dict) -> list[str]:
    """Users whose rollout rank is at, or one below, the percent or coverage threshold,
    and users assigned a variant whose arm rank is at, or one below, an arm's bound."""
    key = entry["key"]
    rollout_targets = {percent_threshold(entry["percent"])}
    if entry.get("experiment"):
        rollout_targets.add(percent_threshold(entry["experiment"]["coverage"]))
    rollout_targets = {t + d for t in rollout_targets for d in (-1, 0) if 0 <= t + d < RANK_SCALE}
    arm_targets = set()
    cumulative = 0.0
    for variant in entry["variants"]:
        cumulative += float(variant["weight"])
        bound = percent_threshold(cumulative)
        arm_targets |= {bound + d for d in (-1, 0) if 0 <= bound + d < RANK_SCALE}
    salt = entry["experiment"]["salt"] if entry.get("experiment") else key
    found: dict = {}
    wanted = {("rollout", t) for t in rollout_targets} | {("arm", t) for t in arm_targets}
    for n in range(200_000):
        if len(found) == len(wanted):
            break
        user = f"edge-{n}"
        target = ("rollout", rollout_rank(key, user))
        if target in wanted and target not in found:
            found[target] = user
        if arm_targets:
            target = ("arm", variant_rank(key, salt, user))
            if target in wanted and target not in found and evaluate(entry, user)["variant"] is not None:
                found[target] = user
    return sorted(set(found.values()), key=lambda user: int(user.split("-")[1]))


def evaluation_cases(rng: random.Random) -> list[dict]:
    cases = []
    for entry, users in evaluation_flags(rng):
        if entry is None:
            key, *users = users
            for user in users:
                cases.append({"key": key, "flag": None, "user": user, **evaluate(None, user)})
            continue
        for user in users:
            cases.append({"flag": entry, "user": user, **evaluate(entry, user)})
    return cases


def generate() -> dict:
    rng = random.Random(SEED)
    return {
        "generator": GENERATOR,
        "bucketing": bucketing_cases(rng),
        "evaluation": evaluation_cases(rng),
    }


def render(document: dict) -> str:
    """Fixed layout: one case per line, UTF-8, keys in insertion order."""

    def one(value) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    lines = ["{", f'  "generator": {one(document["generator"])},']
    for name in ("bucketing", "evaluation"):
        cases = document[name]
        lines.append(f'  "{name}": [')
        lines += [f"    {one(case)}{',' if i + 1 < len(cases) else ''}" for i, case in enumerate(cases)]
        lines.append("  ]," if name == "bucketing" else "  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_coverage(document: dict) -> None:
    """Refuse to write vectors that miss a reason the SDKs must be tested on."""
    reasons = {case["reason"] for case in document["evaluation"]}
    expected = {"missing", "disabled", "shipped", "no-user", "allow-list", "full-rollout", "percent"}
    if reasons != expected:
        sys.exit(f"evaluation vectors cover {sorted(reasons)}, expected {sorted(expected)}")
    if len(document["bucketing"]) < 2000 or len(document["evaluation"]) < 500:
        sys.exit("too few vectors")


def explain(key: str, user: str, percent: float | None) -> None:
    text = f"{key}:{user}"
    hexdigest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    h = int(hexdigest, 16)
    f = h % RANK_SCALE
    rank = rank_of(h)
    print(f"input        {text!r}")
    print(f"sha256       {hexdigest}")
    print(f"H            {h}")
    print(f"H mod 100    {h % 100}   (the Django helper's bucket)")
    print(f"f=H mod 1e4  {f}")
    print(f"rank         ({f} mod 100)*100 + {f}//100 = {f % 100}*100 + {f // 100} = {rank}")
    if percent is not None:
        threshold = percent_threshold(percent)
        print(f"threshold    round({percent}*100) = {threshold}")
        print(f"enabled      {rank} < {threshold} = {rank < threshold}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help='output path, or "-" for stdout')
    parser.add_argument("--explain", nargs="+", metavar="ARG", help="KEY USER [PERCENT]: show one computation")
    args = parser.parse_args(argv)
    if args.explain:
        if len(args.explain) not in (2, 3):
            parser.error("--explain takes KEY USER [PERCENT]")
        explain(args.explain[0], args.explain[1], float(args.explain[2]) if len(args.explain) == 3 else None)
        return 0
    document = generate()
    check_coverage(document)
    text = render(document)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_bytes(text.encode("utf-8"))
        print(
            f"wrote {args.output}: {len(document['bucketing'])} bucketing, "
            f"{len(document['evaluation'])} evaluation cases",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
