#!/usr/bin/env python3
"""Generate the cross-language test vectors in sdk/testdata/vectors.json.

This is an independent reference implementation of docs/evaluation.md and
docs/targeting.md. It uses only
Python's hashlib and big integers (``int(hexdigest, 16)`` is the whole 256-bit digest),
never either SDK, so the Rust and the Python SDK are both checked against it.

Output:
    {"generator": "scripts/gen_vectors.py",
     "bucketing":  [{"key", "user", "percent", "bucket", "rank", "threshold", "enabled"}, ...],
     "evaluation": [{"flag": <flag entry> | null, "user": str | null,
                     "enabled", "variant", "reason", "rank"}, ...],
     "targeting":  [{"flag": <flag entry with "targeting">, "segments": {name: segment},
                     "user": str | null, "context": {attribute: str | number | bool | [str]},
                     "enabled", "variant", "reason", "rule", "rank"}, ...]}
bucket = H mod 100 (the Django helper), rank = the 0.01% rank, threshold =
percent_threshold(percent), enabled = rank < threshold. An evaluation case whose flag is
null is a missing flag and names the key it looks up in "key"; its rank is reported only
for reason "percent", as the Rust SDK does. A targeting case's "segments" are those of the
document (schemaVersion 2) the flag is in; "rule" is the name of the rule that decided, or
null for the fallthrough; "rank" is also reported for reason "targeting-match" when the rule
serves a percent below 100% to a user with an id.

The output is deterministic: every random choice comes from one seeded
``random.Random``, and the JSON is written in a fixed layout, one case per line.
``scripts/test-python`` regenerates the file and fails if it differs byte for byte.

Usage:
    scripts/gen_vectors.py                      # rewrite sdk/testdata/vectors.json
    scripts/gen_vectors.py -o /tmp/vectors.json # write elsewhere ("-" for stdout)
    scripts/gen_vectors.py --explain KEY USER [PERCENT]
                                                # print every step for one (key, user)
    scripts/gen_vectors.py --explain-targeting N
                                                # the targeting case N (from 0), step by step
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
# Targeting (docs/targeting.md): rules, segments and the evaluation context
# --------------------------------------------------------------------------------------

ASCII_DIGITS = "0123456789"
IDENTIFIER_CHARACTERS = frozenset(string.ascii_letters + ASCII_DIGITS + "-")
STRING_OPERATORS = {
    "StartsWith": str.startswith,
    "EndsWith": str.endswith,
    "Contains": lambda text, value: value in text,
}
NUMBER_OPERATORS = {
    "Lt": lambda a, b: a < b,
    "Lte": lambda a, b: a <= b,
    "Gt": lambda a, b: a > b,
    "Gte": lambda a, b: a >= b,
}
VERSION_OPERATORS = {
    "SemverLt": lambda order: order < 0,
    "SemverGte": lambda order: order >= 0,
    "SemverEq": lambda order: order == 0,
}
OPERATORS = ["In", "NotIn", *STRING_OPERATORS, *NUMBER_OPERATORS, *VERSION_OPERATORS, "Exists", "InSegment"]


def is_digits(text: str) -> bool:
    """Non-empty ASCII digits (str.isdigit would also take "٤" and "４")."""
    return text != "" and all(c in ASCII_DIGITS for c in text)


def parse_number(text: str) -> float | None:
    """The grammar -?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?, read as the nearest double; None
    for anything else (float() alone would also take "inf", " 4", "1_000" and "４")."""
    rest = text[1:] if text.startswith("-") else text
    mantissa, exponent = rest, None
    for marker in "eE":
        if marker in rest:
            mantissa, exponent = rest.split(marker, 1)
            break
    whole, dot, fraction = mantissa.partition(".")
    if not is_digits(whole) or (dot and not is_digits(fraction)):
        return None
    if exponent is not None:
        digits = exponent[1:] if exponent[:1] in ("-", "+") else exponent
        if not is_digits(digits):
            return None
    return float(text)  # correctly rounded, as Rust's str::parse::<f64>


def parse_version(text: str) -> tuple | None:
    """MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD] -> (major, minor, patch, prerelease), or
    None. Missing minor and patch read as 0; the build is checked and dropped."""

    def identifiers(part: str) -> list[str] | None:
        items = part.split(".")
        if any(item == "" or not set(item) <= IDENTIFIER_CHARACTERS for item in items):
            return None
        return items

    core, plus, build = text.partition("+")
    if plus and identifiers(build) is None:
        return None
    core, dash, prerelease = core.partition("-")
    numbers = core.split(".")
    if not 1 <= len(numbers) <= 3:
        return None
    for number in numbers:
        if not is_digits(number) or (len(number) > 1 and number[0] == "0"):
            return None
    pre: list = []
    if dash:
        items = identifiers(prerelease)
        if items is None:
            return None
        for item in items:
            if is_digits(item):
                if len(item) > 1 and item[0] == "0":
                    return None
                pre.append((0, int(item), ""))  # numeric identifiers sort first
            else:
                pre.append((1, 0, item))
    major, minor, patch = (int(n) for n in numbers + ["0"] * (3 - len(numbers)))
    return (major, minor, patch, pre)


def compare_versions(a: tuple, b: tuple) -> int:
    """SemVer 2.0.0 §11 precedence: -1, 0 or 1."""
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pre_a, pre_b = a[3], b[3]
    if not pre_a or not pre_b:  # a release is above its pre-releases
        return (len(pre_b) > 0) - (len(pre_a) > 0)
    for x, y in zip(pre_a, pre_b):
        if x != y:
            return -1 if x < y else 1
    return (len(pre_a) > len(pre_b)) - (len(pre_a) < len(pre_b))


def attribute_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    raise TypeError(f"context attribute {value!r} is not a string, number, boolean or string list")


def condition_holds(condition: dict, segments: dict, user: str | None, context: dict) -> bool:
    operator, values = condition["operator"], condition["values"]
    if operator == "InSegment":
        return any(in_segment(segments.get(name), user, context) for name in values)
    attribute = condition["attribute"]
    if attribute == "targetingKey":  # the user id; a context attribute of that name is ignored
        if user is None:
            return False
        value = user
    elif attribute in context:
        value = context[attribute]
    else:
        return False
    kind = attribute_type(value)
    if operator == "Exists":
        return True
    if operator in ("In", "NotIn"):
        if kind == "string":
            found = value in values
        elif kind == "list":
            found = any(item in values for item in value)
        elif kind == "number":
            found = any(parse_number(v) == float(value) for v in values)
        else:
            found = ("true" if value else "false") in values
        return found if operator == "In" else not found
    if operator in STRING_OPERATORS:
        texts = [value] if kind == "string" else value if kind == "list" else []
        test = STRING_OPERATORS[operator]
        return any(test(text, v) for text in texts for v in values)
    if operator in NUMBER_OPERATORS:
        return kind == "number" and NUMBER_OPERATORS[operator](float(value), parse_number(values[0]))
    if operator in VERSION_OPERATORS:
        version = parse_version(value) if kind == "string" else None
        if version is None:
            return False
        return VERSION_OPERATORS[operator](compare_versions(version, parse_version(values[0])))
    raise ValueError(f"unknown operator {operator}")


def in_segment(segment: dict | None, user: str | None, context: dict) -> bool:
    """Not excluded, and included or matched by a rule; a segment absent from the document
    never matches."""
    if segment is None:
        return False
    if user is not None and user in segment["excluded"]:
        return False
    if user is not None and user in segment["included"]:
        return True
    return any(
        all(condition_holds(c, segments={}, user=user, context=context) for c in rule["conditions"])
        for rule in segment["rules"]
    )


def fallthrough_variant(flag: dict, user: str | None) -> str | None:
    """The variant of a user a rule turns on: the shipped winner, else their arm."""
    if flag.get("shippedVariant") is not None:
        return flag["shippedVariant"]
    return None if user is None else assign_variant(flag, user)


def serve_rule(flag: dict, rule: dict, user: str | None) -> dict:
    def result(enabled, reason="targeting-match", variant=None, rank=None):
        return {"enabled": enabled, "variant": variant, "reason": reason, "rule": rule["name"], "rank": rank}

    serve = rule["serve"]
    if "enabled" in serve:
        return result(True, variant=fallthrough_variant(flag, user)) if serve["enabled"] else result(False)
    if "variant" in serve:
        return result(True, variant=serve["variant"])
    threshold = percent_threshold(serve["percent"])
    if threshold >= RANK_SCALE:
        return result(True, variant=fallthrough_variant(flag, user))
    if user is None:
        return result(False, reason="no-user")
    rank = rollout_rank(flag["key"], user)  # the flag's own rank, as its percent
    if rank < threshold:
        return result(True, variant=fallthrough_variant(flag, user), rank=rank)
    return result(False, rank=rank)


def evaluate_targeting(flag: dict, segments: dict, user: str | None, context: dict, trace=None) -> dict:
    """docs/targeting.md's order: kill switch, the first matching rule, the fallthrough."""
    if flag["enabled"]:
        for rule in flag.get("targeting") or []:
            held = [condition_holds(c, segments, user, context) for c in rule["conditions"]]
            if trace:
                for condition, holds in zip(rule["conditions"], held):
                    trace(f"rule {rule['name']}: {json.dumps(condition, ensure_ascii=False)} -> {holds}")
            if all(held):
                return serve_rule(flag, rule, user)
    return {**evaluate(flag, user), "rule": None}


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


def flag(
    key, *, enabled=True, percent=100, allowed=(), variants=(), experiment=None, shipped=None, targeting=(), **extra
):
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
    if targeting:
        entry["targeting"] = list(targeting)
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


# --------------------------------------------------------------------------------------
# Targeting cases
# --------------------------------------------------------------------------------------

ABSENT = object()  # a context without the attribute


def condition(attribute, operator, *values) -> dict:
    if attribute is None:
        return {"operator": operator, "values": list(values)}
    return {"attribute": attribute, "operator": operator, "values": list(values)}


def rule(name, conditions, **serve) -> dict:
    return {"name": name, "conditions": conditions, "serve": serve}


def segment(included=(), excluded=(), rules=()) -> dict:
    return {"included": list(included), "excluded": list(excluded), "rules": [{"conditions": c} for c in rules]}


# (operator, values, attribute values tried). Each runs as one rule serving "on" on a flag
# at 0%, so a match shows as "targeting-match" and a miss as "percent", off.
OPERATOR_TABLE = [
    ("In", ["DE", "FR"], ["DE", "FR", "de", "", "DEU", " DE", ["US", "FR"], ["US"], [], 4, True, ABSENT]),
    ("In", ["4", "true", "x"], [4, 4.0, "4", 4.5, -4, True, False, "true", "True", ["4"], ["x", "y"]]),
    ("In", ["4.0"], [4, 4.0, "4", "4.0", 4.000000000000001]),
    ("In", ["1e3"], [1000, 1000.0, 1000.5, "1000", "1e3"]),
    ("In", ["007", "-0", "0.1"], [7, 0, -0.0, 0.1, 0.30000000000000004, "007"]),
    ("In", ["0.3"], [0.3, 0.30000000000000004]),
    ("In", ["+4", " 4", "4.", ".5", "0x10", "1_000", "inf", "NaN", "４", "٤"], [4, 0.5, 16, 1000, "+4", "٤"]),
    ("In", ["false", "1", "0"], [False, True, 1, 0, "false"]),
    ("In", ["é", "user@example.com"], ["é", "e\u0301", "É", "user@example.com", "USER@example.com"]),
    ("NotIn", ["DE", "FR"], ["DE", "US", "", ["US", "DE"], ["US"], [], 4, True, False, ABSENT]),
    ("NotIn", ["4", "true"], [4, 4.0, 5, "4.0", "4", True, False, ABSENT]),
    ("StartsWith", ["internal-", "qa-"], ["internal-x", "internal", "qa-", "Internal-x", ["x", "qa-1"], ["x"], [], 4, True, ABSENT]),
    ("StartsWith", ["用户"], ["用户123", "测试用户", "用"]),
    ("EndsWith", ["@example.com"], ["a@example.com", "@example.com", "a@EXAMPLE.com", "a@example.com ", ["b@x.org", "a@example.com"], 5, False, ABSENT]),
    ("Contains", ["beta", "🚀"], ["superbeta1", "bet", "x🚀y", ["alpha"], ["alphabeta"], [], False, 0, ABSENT]),
    ("Lt", ["10"], [9, 10, 10.0, 9.999, -1e300, 11, "9", True, False, [], ["9"], ABSENT]),
    ("Lte", ["10.5"], [10.5, 10.500000000000002, 10, 11, "10"]),
    ("Gt", ["1e3"], [1000, 1000.0, 1000.5, 1001, 999, "2000", True]),
    ("Gte", ["-2.5"], [-2.5, -2.6, 0, -3, "0", False, ABSENT]),
    ("Gte", ["0.3"], [0.30000000000000004, 0.3, 0.29999999999999993]),
    ("Lt", ["0.3"], [0.30000000000000004, 0.3, 0.29999999999999993]),
    ("Gte", ["-0"], [0, -0.0, -1e-300]),
    ("SemverLt", ["4.2"], [
        "4.1.9", "4.2.0", "4.2", "4", "5", "4.2.0-rc.1", "4.2-rc.1", "4-rc", "4.2.0+build.1", "4.1.9+build",
        "v4.1", "V4.1", "4.01", "04.1", "4.1.", ".4.1", "", " 4.1", "4.1 ", "4.1.0.0", "4.1.0-", "4.1.0-01",
        "4.1.0+", "4.1.0-rc..1", "4.1.0-rc+a+b", "4.1.0-rc_1", "٤.1", "４.1", "4..1",
        4.1, 4, True, ["4.1.0"], [], ABSENT,
    ]),
    ("SemverGte", ["4.2.0-rc.1"], [
        "4.2.0-rc.1", "4.2.0-rc.2", "4.2.0-rc.10", "4.2.0-rc", "4.2.0-rc.1.1", "4.2.0-rc.1.0", "4.2.0-beta",
        "4.2.0-rc.a", "4.2.0-RC.1", "4.2.0-0", "4.2.0-rc0", "4.2.0", "4.2", "4.1.99", "4.2.0-rc.1+b.7",
        "4.2-rc.1", "4.2.0-rc.01", "4.2.0-rc.0a", "4.2.0--",
    ]),
    ("SemverEq", ["4.2"], [
        "4.2.0", "4.2", "4.2.0+abc", "4.2+abc", "4.2.0+abc.001", "4.2.0+0", "4.2.0-rc", "4.2.1", "4.2.0+",
        "4.2.0+a+b", "4.2.0+a..b", "4.20", "4.2.0-0",
    ]),
    ("SemverEq", ["1.0.0-x-y.0a"], ["1.0.0-x-y.0a", "1-x-y.0a", "1.0.0-x-y.0A", "1.0.0-x-y.0a+z", "1.0.0-x-y"]),
    # Numbers past 64 bits compare as integers all the same.
    ("SemverLt", ["18446744073709551616.0.0"], ["18446744073709551615", "18446744073709551616", "99999999999999999999999"]),
    ("SemverEq", ["1.0.0-18446744073709551616"], ["1.0.0-18446744073709551616", "1.0.0-18446744073709551617"]),
    ("SemverLt", ["1.0.0-18446744073709551616"], ["1.0.0-18446744073709551615", "1.0.0-9", "1.0.0-a"]),
    ("Exists", [], ["x", "", 0, False, True, [], ["a"], ABSENT]),
]
# Every attribute type against every operator, with values the right type would match.
TYPE_PROBES = ["5", 5, True, ["5"], [], ABSENT]
OPERATOR_TABLE += [
    (operator, values, TYPE_PROBES)
    for operator, values in [
        ("In", ["5"]), ("NotIn", ["5"]), ("StartsWith", ["5"]), ("EndsWith", ["5"]), ("Contains", ["5"]),
        ("Lt", ["6"]), ("Lte", ["5"]), ("Gt", ["4"]), ("Gte", ["5"]),
        ("SemverLt", ["6"]), ("SemverGte", ["5"]), ("SemverEq", ["5"]),
    ]
]

# SemVer 2.0.0 §11's own example, in ascending order.
SEMVER_CHAIN = [
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
    "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1",
]


def targeting_scenarios(rng: random.Random) -> list[tuple[dict, dict, list]]:
    """(flag, segments, [(user, context), ...]) triples."""
    scenarios = []

    def users(n: int) -> list[str]:
        return [f"user-{rng.randrange(10**6)}" for _ in range(n)]

    for index, (operator, values, attributes) in enumerate(OPERATOR_TABLE):
        name = "version" if operator.startswith("Semver") else "attr"
        entry = flag(f"op.{index}.{operator.lower()}", percent=0, targeting=[
            rule("r", [condition(name, operator, *values)], enabled=True)
        ])
        trials = [("u-1", {} if value is ABSENT else {name: value}) for value in attributes]
        scenarios.append((entry, {}, trials))
    chain = []
    for lower, upper in zip(SEMVER_CHAIN, SEMVER_CHAIN[1:]):
        chain.append(flag(f"semver.chain.{upper}", percent=0, targeting=[
            rule("below", [condition("version", "SemverLt", upper)], variant="lt"),
            rule("at-or-above", [condition("version", "SemverGte", upper)], variant="gte"),
        ], variants=[("lt", 50), ("gte", 50)]))
        scenarios.append((chain[-1], {}, [("u-1", {"version": lower}), ("u-1", {"version": upper})]))

    # The targeting key is the user id; a context attribute of that name is ignored.
    entry = flag("targeting.key", percent=0, targeting=[
        rule("internal", [condition("targetingKey", "StartsWith", "internal-")], enabled=True),
        rule("answer", [condition("targetingKey", "In", "42")], variant="b"),
        rule("anyone", [condition("targetingKey", "Exists")], enabled=False),
    ], variants=[("a", 50), ("b", 50)])
    scenarios.append((entry, {}, [
        ("internal-7", {}), ("42", {}), ("user-1", {}), (None, {}), ("user-1", {"targetingKey": "internal-1"}),
        (None, {"targetingKey": "42"}), ("", {}),
    ]))

    # Rule order: the first rule that matches decides.
    entry = flag("rule.order", percent=0, variants=[("a", 50), ("b", 50)], targeting=[
        rule("legal-hold", [condition("country", "In", "DE", "FR")], enabled=False),
        rule("enterprise", [condition("plan", "In", "enterprise")], enabled=True),
        rule("paid", [condition("plan", "In", "enterprise", "pro")], variant="b"),
        rule("big-and-new", [condition("seats", "Gte", "100"), condition("appVersion", "SemverGte", "4.2")],
             percent=37.5),
    ])
    contexts = [
        {"country": "DE", "plan": "enterprise"},
        {"country": "US", "plan": "enterprise"},
        {"country": "US", "plan": "pro"},
        {"plan": "pro"},
        {"country": "US", "plan": "free", "seats": 250, "appVersion": "4.3.1"},
        {"country": "US", "plan": "free", "seats": 250, "appVersion": "4.1.0"},
        {"country": "US", "plan": "free", "seats": 99, "appVersion": "4.3.1"},
        {"country": "US", "plan": "free", "seats": 250},
        {},
    ]
    scenarios.append((entry, {}, [(user, ctx) for ctx in contexts for user in ["u-1", None, *users(2)]]))

    # Segments: excluded > included > rules; absent segments never match.
    segments = {
        "beta": segment(
            included=["alice", "bob", "mallory"],
            excluded=["mallory", "carol"],
            rules=[[condition("email", "EndsWith", "@example.com")]],
        ),
        "staff": segment(
            included=["s1"],
            rules=[
                [condition("team", "In", "ops"), condition("level", "Gte", "3")],
                [condition("targetingKey", "StartsWith", "staff-")],
                [condition("contractor", "NotIn", "true")],
            ],
        ),
        "empty": segment(),
    }
    example = {"email": "x@example.com"}
    segment_trials = [
        ("alice", {}), ("bob", example), ("mallory", {}), ("mallory", example), ("carol", example),
        ("dave", example), ("dave", {"email": "dave@example.org"}), ("dave", {}), (None, example), (None, {}),
        ("s1", {}), ("s1", {"contractor": True}), ("staff-9", {}), ("ops-1", {"team": "ops", "level": 3}),
        ("ops-2", {"team": "ops", "level": 2}), ("ops-3", {"team": ["ops"], "level": 5}),
        ("c-1", {"contractor": False}), ("c-2", {"contractor": "no"}), (None, {"team": "ops", "level": 4}),
    ]
    for name, values in [
        ("beta", ["beta"]),
        ("staff", ["staff"]),
        ("beta-or-staff", ["beta", "staff"]),
        ("ghost", ["ghost"]),
        ("ghost-or-beta", ["ghost", "beta"]),
        ("empty", ["empty"]),
    ]:
        entry = flag(f"segment.{name}", percent=0, targeting=[
            rule("in-segment", [condition(None, "InSegment", *values)], enabled=True)
        ])
        used = {v: segments[v] for v in values if v in segments}
        scenarios.append((entry, used, segment_trials))
    entry = flag("segment.and.version", percent=5, targeting=[
        rule("beta-on-new-app", [condition(None, "InSegment", "beta"), condition("appVersion", "SemverGte", "4.2")],
             percent=50),
    ])
    scenarios.append((entry, {"beta": segments["beta"]}, [
        (user, {**ctx, "appVersion": version})
        for user, ctx in segment_trials[:10]
        for version in ("4.2.0", "4.1")
    ]))

    # A rule's percent uses the flag's own rank: 0, 37.5 and 100, for many users.
    for percent, count in [(0, 12), (37.5, 50), (100, 12), (99.995, 4), (0.005, 4)]:
        entry = flag(f"rule.percent.{percent}", percent=10, targeting=[
            rule("pro-share", [condition("plan", "In", "pro")], percent=percent)
        ])
        trials = [(user, {"plan": "pro"}) for user in [None, *users(count), *rule_boundary_users(entry, percent)]]
        trials += [(user, {"plan": "free"}) for user in [None, *users(4)]]
        scenarios.append((entry, {}, trials))
    entry = flag("rule.percent.ab", percent=0, variants=[("control", 50), ("treatment", 50)],
                 experiment=(50, "rule-salt"), allowed=["vip"], targeting=[
                     rule("pro-share", [condition("plan", "In", "pro")], percent=60)
                 ])
    scenarios.append((entry, {}, [(user, {"plan": "pro"}) for user in ["vip", None, *users(20)]]))

    # Rules come after the kill switch and before shipped, allow-list and full rollout.
    common = [
        ("vip", {"country": "DE"}), ("vip", {"country": "US"}), ("u-1", {"country": "DE"}),
        ("u-1", {}), (None, {"country": "DE"}), (None, {"country": "US"}), (None, {}),
    ]
    for entry in [
        flag("killed.with.rules", enabled=False, allowed=["vip"], phase="Killed", targeting=[
            rule("de", [condition("country", "In", "DE")], enabled=True)
        ]),
        flag("shipped.with.rules", percent=30, variants=[("control", 50), ("treatment", 50)],
             experiment=(30, "s1"), shipped="treatment", allowed=["vip"], targeting=[
                 rule("de-off", [condition("country", "In", "DE")], enabled=False),
                 rule("us-on", [condition("country", "In", "US")], enabled=True),
             ]),
        flag("allow.with.rules", percent=0, allowed=["vip"], targeting=[
            rule("de-off", [condition("country", "In", "DE")], enabled=False)
        ]),
        flag("full.with.rules", percent=100, targeting=[
            rule("de-off", [condition("country", "In", "DE")], enabled=False)
        ]),
        flag("variants.rule.on", percent=0, variants=[("a", 33.33), ("b", 33.33), ("c", 33.34)], targeting=[
            rule("de-on", [condition("country", "In", "DE")], enabled=True),
            rule("us-c", [condition("country", "In", "US")], variant="c"),
        ]),
        flag("experiment.rule.on", percent=0, variants=[("control", 50), ("treatment", 50)],
             experiment=(20, "exp"), targeting=[
                 rule("de-on", [condition("country", "In", "DE")], enabled=True),
                 rule("no-user-percent", [condition("country", "NotIn", "DE")], percent=50),
             ]),
    ]:
        scenarios.append((entry, {}, common + [(user, {"country": "DE"}) for user in users(6)]))
    return scenarios


def rule_boundary_users(entry: dict, percent) -> list[str]:
    """Users whose rollout rank is at, or one below, the rule percent's threshold."""
    threshold = percent_threshold(percent)
    wanted = {t for t in (threshold - 1, threshold) if 0 <= t < RANK_SCALE}
    found = find_users(lambda user: rollout_rank(entry["key"], user), wanted, "rule-edge")
    return [found[rank] for rank in sorted(found)]


def targeting_cases(rng: random.Random) -> list[dict]:
    cases = []
    for entry, segments, trials in targeting_scenarios(rng):
        for user, context in trials:
            answer = evaluate_targeting(entry, segments, user, context)
            cases.append({"flag": entry, "segments": segments, "user": user, "context": context, **answer})
    return cases


def generate() -> dict:
    rng = random.Random(SEED)
    return {
        "generator": GENERATOR,
        "bucketing": bucketing_cases(rng),
        "evaluation": evaluation_cases(rng),
        "targeting": targeting_cases(rng),
    }


def render(document: dict) -> str:
    """Fixed layout: one case per line, UTF-8, keys in insertion order."""

    def one(value) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    lines = ["{", f'  "generator": {one(document["generator"])},']
    sections = ("bucketing", "evaluation", "targeting")
    for name in sections:
        cases = document[name]
        lines.append(f'  "{name}": [')
        lines += [f"    {one(case)}{',' if i + 1 < len(cases) else ''}" for i, case in enumerate(cases)]
        lines.append("  ]," if name != sections[-1] else "  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_coverage(document: dict) -> None:
    """Refuse to write vectors that miss a reason or an operator the SDKs must be tested on."""
    reasons = {case["reason"] for case in document["evaluation"]}
    expected = {"missing", "disabled", "shipped", "no-user", "allow-list", "full-rollout", "percent"}
    if reasons != expected:
        sys.exit(f"evaluation vectors cover {sorted(reasons)}, expected {sorted(expected)}")
    if len(document["bucketing"]) < 2000 or len(document["evaluation"]) < 500:
        sys.exit("too few vectors")
    targeting = document["targeting"]
    reasons = {case["reason"] for case in targeting}
    if reasons != (expected - {"missing"}) | {"targeting-match"}:
        sys.exit(f"targeting vectors cover {sorted(reasons)}")
    # Each operator, alone in a flag's only rule, both matches and fails to.
    outcomes: dict = {}
    for case in targeting:
        rules = case["flag"].get("targeting", [])
        if len(rules) == 1 and len(rules[0]["conditions"]) == 1:
            operator = rules[0]["conditions"][0]["operator"]
            outcomes.setdefault(operator, set()).add(case["reason"] == "targeting-match")
    lacking = [op for op in OPERATORS if outcomes.get(op) != {True, False}]
    if lacking:
        sys.exit(f"targeting vectors lack a match and a miss of {lacking}")
    kinds = {
        (case["reason"], case["rule"] is not None, case["rank"] is not None, case["enabled"]) for case in targeting
    }
    for kind in [
        ("no-user", True, False, False),  # a rule percent below 100% without a user
        ("targeting-match", True, True, True),  # in a rule's percent
        ("targeting-match", True, True, False),  # matched, outside the rule's percent
        ("targeting-match", True, False, True),
        ("targeting-match", True, False, False),
    ]:
        if kind not in kinds:
            sys.exit(f"targeting vectors lack a case of {kind}")
    if not 300 <= len(targeting) <= 1500:
        sys.exit(f"{len(targeting)} targeting vectors; keep a few hundred")


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


def explain_targeting(index: int) -> None:
    # The targeting cases draw from the rng after the other sections: replay those first.
    rng = random.Random(SEED)
    bucketing_cases(rng)
    evaluation_cases(rng)
    cases = targeting_cases(rng)
    if not 0 <= index < len(cases):
        sys.exit(f"there are {len(cases)} targeting cases, 0..{len(cases) - 1}")
    case = cases[index]
    print(f"flag         {json.dumps(case['flag'], ensure_ascii=False)}")
    print(f"segments     {json.dumps(case['segments'], ensure_ascii=False)}")
    print(f"user         {case['user']!r}")
    print(f"context      {json.dumps(case['context'], ensure_ascii=False)}")
    answer = evaluate_targeting(case["flag"], case["segments"], case["user"], case["context"], trace=print)
    print(f"answer       {json.dumps(answer, ensure_ascii=False)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help='output path, or "-" for stdout')
    parser.add_argument("--explain", nargs="+", metavar="ARG", help="KEY USER [PERCENT]: show one computation")
    parser.add_argument("--explain-targeting", type=int, metavar="N", help="show targeting case N step by step")
    args = parser.parse_args(argv)
    if args.explain_targeting is not None:
        explain_targeting(args.explain_targeting)
        return 0
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
            f"{len(document['evaluation'])} evaluation, {len(document['targeting'])} targeting cases",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
