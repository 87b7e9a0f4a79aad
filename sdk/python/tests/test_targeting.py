"""Targeting rules in Python beyond the shared vectors: the attribute types only Python has,
the context argument of every entry point, and rule answers kept out of cohort metrics."""

import json
from collections import OrderedDict
from fractions import Fraction

import pytest

import rollgate
from conftest import flag_entry


def rule(name, *conditions, **serve):
    return {"name": name, "conditions": list(conditions), "serve": serve or {"enabled": True}}


def cond(attribute, operator, *values):
    return {"attribute": attribute, "operator": operator, "values": list(values)}


def flag_set(*rules, segments=None, **fields):
    entry = flag_entry("f", percent=0, targeting=list(rules), **fields)
    document = {"schemaVersion": 2, "flags": {"f": entry}, "segments": segments or {}}
    return rollgate.FlagSet.from_json(json.dumps(document))


def matches(flags, context, user="u-1"):
    return flags.evaluate("f", user, context).reason == "targeting-match"


class Text(str):
    pass


class Count(int):
    pass


@pytest.mark.parametrize(
    "operator, values, value, expected",
    [
        # bool is an int in Python, but never a number here.
        ("In", ["1"], True, False),
        ("In", ["true"], True, True),
        ("Gte", ["0"], True, False),
        ("Lt", ["2"], False, False),
        ("In", ["1"], 1, True),
        # Subclasses are their base type.
        ("In", ["x"], Text("x"), True),
        ("Gt", ["4"], Count(5), True),
        ("SemverEq", ["4.2"], Text("4.2.0"), True),
        # Other real numbers are numbers.
        ("Lt", ["0.5"], Fraction(1, 3), True),
        # An int past the doubles reads as infinite, not an error.
        ("Gt", ["1e308"], 10**400, True),
        ("Lt", ["-1e308"], -(10**400), True),
        ("In", ["5"], 10**400, False),
        # Tuples are string lists; a list with anything but strings is no string list.
        ("In", ["a"], ("b", "a"), True),
        ("In", ["a"], ["a", 1], False),
        ("NotIn", ["a"], ["b", 1], False),
        ("StartsWith", ["a"], ["ab", None], False),
        ("NotIn", ["a"], (), True),
        # Types no operator takes: false for all but Exists.
        ("In", ["{}"], {}, False),
        ("NotIn", ["x"], {"x": 1}, False),
        ("NotIn", ["x"], b"x", False),
        ("Exists", [], {"nested": 1}, True),
        ("Exists", [], b"", True),
    ],
)
def test_python_attribute_types(operator, values, value, expected):
    flags = flag_set(rule("r", cond("a", operator, *values)))
    assert matches(flags, {"a": value}) is expected
    assert flags.get("f").is_enabled("u-1", {"a": value}) is expected


def test_an_attribute_set_to_none_is_absent():
    flags = flag_set(rule("r", cond("a", "NotIn", "x")), rule("e", cond("b", "Exists")))
    assert not matches(flags, {"a": None, "b": None})
    assert flags.evaluate("f", "u", {"a": "y"}).rule == "r"
    assert flags.evaluate("f", "u", {"b": 0}).rule == "e"


def test_any_mapping_is_a_context_and_nothing_else_is():
    flags = flag_set(rule("r", cond("plan", "In", "pro")))
    assert matches(flags, OrderedDict(plan="pro"))
    assert not matches(flags, {})
    for context in (["plan", "pro"], "plan=pro", 5):
        with pytest.raises(TypeError, match="a context is a dict of attributes"):
            flags.evaluate("f", "u", context)


def test_the_targeting_key_is_the_user_id_whatever_its_form(tmp_path):
    path = tmp_path / "flags.json"
    entry = flag_entry("f", percent=0, targeting=[rule("answer", cond("targetingKey", "In", "42"))])
    path.write_text(json.dumps({"schemaVersion": 2, "flags": {"f": entry}}), encoding="utf-8")
    flags = rollgate.Flags(path)

    class DjangoishUser:
        pk = 42

    for user in ("42", 42, DjangoishUser()):
        assert flags.evaluate("f", user).rule == "answer", user
    assert not flags.flag_enabled("f", 41)
    assert not flags.flag_enabled("f", None, context={"targetingKey": "42"})


@pytest.fixture
def targeted(tmp_path, monkeypatch):
    """A mounted document: "rules" serves DE users a variant and is off for FR users."""
    variants = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]
    entries = {
        "rules": flag_entry(
            "rules",
            percent=100,
            variants=variants,
            targeting=[
                rule("de", cond("country", "In", "DE"), variant="treatment"),
                rule("fr", cond("country", "In", "FR"), enabled=False),
            ],
        ),
        "plain": flag_entry("plain", percent=100),
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"schemaVersion": 2, "flags": entries}), encoding="utf-8")
    monkeypatch.setenv("ROLLGATE_FLAGS_PATH", str(path))
    return rollgate.Flags(path)


def test_every_entry_point_takes_a_context(targeted):
    de, fr = {"country": "DE"}, {"country": "FR"}
    answer = rollgate.Evaluation(True, "treatment", "targeting-match", None, "de")
    for client in (targeted, rollgate):
        assert client.evaluate("rules", "u", de) == answer
        assert client.evaluate("rules", "u", context=de) == answer
        assert client.flag_enabled("rules", "u", context=de) and not client.flag_enabled("rules", "u", context=fr)
        assert client.variant("rules", "u", context=de) == "treatment"
        assert client.variant("rules", "u", context=fr) is None
        assert client.flags_enabled(["rules", "plain"], "u", context=fr) == [False, True]
        assert client.evaluate_many(["rules", "plain"], "u", context=de)[0] == answer
        # Without a context no rule matches: the fallthrough, at 100%.
        assert client.evaluate("rules", "u").reason == "full-rollout"
        assert client.evaluate("rules", "u").rule is None
        with pytest.raises(TypeError):
            client.flag_enabled("rules", "u", context=[("country", "DE")])


def test_an_override_wins_over_the_rules(targeted):
    with rollgate.override_flag("rules", active=True, variant="control"):
        answer = targeted.evaluate("rules", "u", {"country": "FR"})
        assert (answer.enabled, answer.variant, answer.reason, answer.rule) == (True, "control", "override", None)


def test_rule_answers_are_not_counted_in_cohort_metrics(targeted):
    prometheus_client = pytest.importorskip("prometheus_client")
    from rollgate.metrics import CohortMetrics

    metrics = CohortMetrics(registry=prometheus_client.CollectorRegistry())
    with metrics.request() as scope:
        assert targeted.flag_enabled("rules", "u", context={"country": "DE"})
        assert targeted.variant("rules", "u", context={"country": "FR"}) is None
        assert targeted.evaluate_many(["rules"], "u", context={"country": "DE"})[0].rule == "de"
    assert scope.cohorts == {}
    # The fallthrough is counted, and the first fallthrough answer of a request is the one.
    with metrics.request() as scope:
        assert not targeted.flag_enabled("rules", "u", context={"country": "FR"})
        arm = targeted.variant("rules", "u", context={"country": "US"})
        targeted.flag_enabled("rules", "u", context={"country": "DE"})
    assert scope.cohorts == {"rules": arm} and arm in ("control", "treatment")


def test_a_sharded_document_carries_the_segments_of_its_shards(tmp_path):
    import hashlib

    def shard(key, segment_name, user):
        entry = flag_entry(key, percent=0, targeting=[rule("in", {"operator": "InSegment", "values": [segment_name]})])
        segments = {segment_name: {"included": [user], "excluded": [], "rules": []}}
        return json.dumps({"schemaVersion": 2, "flags": {key: entry}, "segments": segments})

    texts = [shard("a", "alpha", "ann"), shard("b", "beta", "bob")]
    shards = []
    for i, text in enumerate(texts):
        (tmp_path / f"shard-{i}.json").write_text(text, encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        shards.append({"configMap": f"flags-{i}", "key": f"shard-{i}.json", "sha256": digest})
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"schemaVersion": 2, "generation": 1, "shards": shards}), encoding="utf-8")
    flags = rollgate.Flags(path)
    assert flags.loaded, flags.last_error
    assert sorted(flags.flags.segments) == ["alpha", "beta"]
    assert flags.flag_enabled("a", "ann") and not flags.flag_enabled("a", "bob")
    assert flags.flag_enabled("b", "bob") and not flags.flag_enabled("b", "ann")
