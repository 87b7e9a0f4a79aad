"""Every case of sdk/testdata/vectors.json, the file the Rust SDK's tests read too."""

import json

import pytest

import rollgate
from conftest import VECTORS_PATH, load_vectors

VECTORS = load_vectors()
BUCKETING = VECTORS["bucketing"]
EVALUATION = VECTORS["evaluation"]
TARGETING = VECTORS["targeting"]


def short(user):
    if user is None:
        return "null"
    return repr(user if len(user) <= 24 else user[:24] + f"…({len(user)})")


def test_file_is_large_enough():
    assert VECTORS["generator"] == "scripts/gen_vectors.py"
    assert len(BUCKETING) >= 2000
    assert len(EVALUATION) >= 500
    reasons = {case["reason"] for case in EVALUATION}
    assert reasons == {"missing", "disabled", "shipped", "no-user", "allow-list", "full-rollout", "percent"}


@pytest.mark.parametrize(
    "case",
    BUCKETING,
    ids=[f"bucketing[{i}]-{c['key'][:20]}-{short(c['user'])}-{c['percent']}" for i, c in enumerate(BUCKETING)],
)
def test_bucketing(case):
    key, user, percent = case["key"], case["user"], case["percent"]
    rank = rollgate.rollout_rank(key, user)
    assert rank == case["rank"]
    assert rollgate.legacy_bucket(key, user) == case["bucket"]
    assert rollgate.percent_threshold(percent) == case["threshold"]
    assert (rank < case["threshold"]) == case["enabled"]
    # For whole percents the 0.01% rule is exactly the Django helper's H % 100 < p.
    if float(percent).is_integer() and 0 <= percent <= 100:
        assert (case["bucket"] < percent) == case["enabled"]


def expected(case):
    return rollgate.Evaluation(case["enabled"], case["variant"], case["reason"], case["rank"])


def case_key(case):
    return case["key"] if case["flag"] is None else case["flag"]["key"]


@pytest.mark.parametrize(
    "case",
    EVALUATION,
    ids=[f"evaluation[{i}]-{case_key(c)}-{short(c['user'])}" for i, c in enumerate(EVALUATION)],
)
def test_evaluation(case):
    key = case_key(case)
    flags = {} if case["flag"] is None else {key: case["flag"]}
    flag_set = rollgate.FlagSet.from_json(json.dumps({"schemaVersion": 1, "flags": flags}))
    assert flag_set.evaluate(key, case["user"]) == expected(case)
    user = case["user"]
    if user is not None and user.isascii() and user.isdigit() and str(int(user)) == user:
        assert flag_set.evaluate(key, rollgate.user_id(int(user))) == expected(case)


def test_evaluation_through_a_client(tmp_path):
    """All the vector flags in one mounted document, asked through the public API."""
    entries = {}
    for case in EVALUATION:
        if case["flag"] is not None:
            key = case["flag"]["key"]
            assert entries.setdefault(key, case["flag"]) == case["flag"], f"two flags named {key}"
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"schemaVersion": 1, "flags": entries}), encoding="utf-8")
    flags = rollgate.Flags(path)
    assert flags.loaded and flags.reload_errors == 0
    failures = []
    for index, case in enumerate(EVALUATION):
        key, user = case_key(case), case["user"]
        got = (flags.evaluate(key, user), flags.flag_enabled(key, user), flags.variant(key, user))
        want = (expected(case), case["enabled"], case["variant"])
        if got != want:
            failures.append(f"evaluation[{index}] {key} {short(user)}: got {got}, expected {want}")
    assert not failures, "\n".join(failures[:50])


def test_vectors_path_is_the_shared_file():
    assert VECTORS_PATH.parts[-3:] == ("sdk", "testdata", "vectors.json")


def expected_targeting(case):
    return rollgate.Evaluation(case["enabled"], case["variant"], case["reason"], case["rank"], case["rule"])


def test_targeting_vectors_cover_every_reason_and_operator():
    assert 300 <= len(TARGETING)
    reasons = {case["reason"] for case in TARGETING}
    assert reasons == {"disabled", "targeting-match", "shipped", "no-user", "allow-list", "full-rollout", "percent"}
    operators = {
        condition["operator"]
        for case in TARGETING
        for rule in case["flag"].get("targeting", [])
        for condition in rule["conditions"]
    }
    assert operators == set(rollgate.document.OPERATORS)


@pytest.mark.parametrize(
    "case",
    TARGETING,
    ids=[f"targeting[{i}]-{c['flag']['key']}-{short(c['user'])}" for i, c in enumerate(TARGETING)],
)
def test_targeting(case):
    key, user, context = case["flag"]["key"], case["user"], case["context"]
    document = {"schemaVersion": 2, "flags": {key: case["flag"]}, "segments": case["segments"]}
    flag_set = rollgate.FlagSet.from_json(json.dumps(document))
    assert flag_set.evaluate(key, user, context) == expected_targeting(case)
    assert flag_set.get(key).is_enabled(user, context) == case["enabled"]
    # Tuples are string lists too.
    as_tuples = {name: tuple(value) if isinstance(value, list) else value for name, value in context.items()}
    assert flag_set.evaluate(key, user, as_tuples) == expected_targeting(case)


def test_targeting_through_a_client(tmp_path):
    """All the targeting flags and their segments in one document, asked through the public API."""
    entries, segments = {}, {}
    for case in TARGETING:
        key = case["flag"]["key"]
        assert entries.setdefault(key, case["flag"]) == case["flag"], f"two flags named {key}"
        for name, segment in case["segments"].items():
            assert segments.setdefault(name, segment) == segment, f"two segments named {name}"
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"schemaVersion": 2, "flags": entries, "segments": segments}), encoding="utf-8")
    flags = rollgate.Flags(path)
    assert flags.loaded and flags.reload_errors == 0
    failures = []
    for index, case in enumerate(TARGETING):
        key, user, context = case["flag"]["key"], case["user"], case["context"]
        got = (
            flags.evaluate(key, user, context),
            flags.flag_enabled(key, user, context=context),
            flags.variant(key, user, context=context),
            flags.evaluate_many([key], user, context)[0],
        )
        want = (expected_targeting(case), case["enabled"], case["variant"], expected_targeting(case))
        if got != want:
            failures.append(f"targeting[{index}] {key} {short(user)} {context}: got {got}, expected {want}")
    assert not failures, "\n".join(failures[:50])
