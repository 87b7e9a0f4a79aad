"""Parsing and checking the flag document: errors, never crashes; the Rust SDK's rules."""

import json

import pytest

import rollgate
from conftest import document, flag_entry
from rollgate import FlagDocumentError, parse_document


def test_parses_a_full_entry_and_ignores_unknown_fields():
    flags = parse_document(
        json.dumps(
            {
                "schemaVersion": 1,
                "futureTopLevel": True,
                "flags": {
                    "exp": {
                        "key": "exp",
                        "enabled": True,
                        "percent": 30,
                        "allowedUsers": ["vip"],
                        "variants": [{"name": "control", "weight": 50, "color": "x"}, {"name": "t", "weight": 50.0}],
                        "experiment": {"coverage": 30.5, "salt": "s1", "extra": 1},
                        "shippedVariant": None,
                        "phase": "Experimenting",
                        "generation": 4,
                        "updatedAt": "2025-01-01T00:00:00Z",
                        "somethingNew": {"nested": [1]},
                    }
                },
            }
        ).encode()
    )
    entry = flags["exp"]
    assert entry.percent == 30.0 and isinstance(entry.percent, float)
    assert entry.allowed_users == ("vip",)
    assert [v.name for v in entry.variants] == ["control", "t"]
    assert entry.experiment == rollgate.document.ExperimentAssignment(30.5, "s1")
    assert entry.shipped_variant is None and entry.generation == 4


def test_defaults_for_optional_fields():
    entry = parse_document(document(flag_entry("a", percent=5.5)))["a"]
    assert entry.allowed_users == () and entry.variants == () and entry.experiment is None
    assert (entry.phase, entry.generation, entry.updated_at) == ("", 0, "")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"{", "malformed flag document"),
        (b"", "malformed flag document"),
        (b"[]", "expected an object"),
        (b"null", "expected an object"),
        (b"\xff", "not UTF-8"),
        ('{"schemaVersion": 1, "flags": {}}'.encode("utf-16"), "not UTF-8"),
        (b'\xef\xbb\xbf{"schemaVersion": 1, "flags": {}}', "BOM"),
        (b'{"flags": {}}', "schemaVersion: missing field"),
        (b'{"schemaVersion": "1", "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": 1.0, "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": true, "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": -1, "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": 3, "flags": {}}', "unsupported flag document schemaVersion 3"),
        (b'{"schemaVersion": 0, "flags": {"a": 5}}', "schemaVersion 0"),
        (b'{"schemaVersion": 1}', "flags: missing field"),
        (b'{"schemaVersion": 1, "flags": []}', "flags: expected an object"),
        (b'{"schemaVersion": 1, "flags": {"a": 1}}', "flags.a: expected an object"),
        (b'{"schemaVersion": 1, "flags": {"a": {"key": "a"}}}', "flags.a.enabled: missing field"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":1,"percent":1}}}', "expected a boolean"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":true}}}', "expected a number"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":"5"}}}', "expected a number"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":NaN}}}', "NaN is not valid JSON"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":Infinity}}}', "Infinity"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1e999}}}', "outside 0..100"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"allowedUsers":null}}}', "array"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"allowedUsers":[7]}}}', "string"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"allowedUsers":["\\ud800"]}}}', "surrogate"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"generation":1.5}}}', "64-bit integer"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"b","enabled":true,"percent":1}}}', "they must match"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":101}}}', "flags.a.percent"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":-1}}}', "outside 0..100"),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":60},{"name":"y","weight":30}]}}}',
            "sum to 100, got 90",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":110},{"name":"y","weight":-10}]}}}',
            "non-negative",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":100}],"experiment":{"coverage":120,"salt":"s"}}}}',
            "experiment.coverage",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":100}],"experiment":{"coverage":20}}}}',
            "salt: missing field",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":100}],"shippedVariant":"z"}}}',
            "shippedVariant",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "malformed flag document"),
    ],
)
def test_unusable_documents_are_errors_not_crashes(data, message):
    with pytest.raises(FlagDocumentError) as error:
        parse_document(data)
    assert message in str(error.value)


def test_weights_are_summed_left_to_right_like_rust():
    # 0.1 + 0.2 + ... accumulates rounding error; within 1e-6 of 100 it is accepted.
    variants = [{"name": f"v{i}", "weight": 0.1} for i in range(999)] + [{"name": "last", "weight": 0.1}]
    flags = parse_document(document(flag_entry("a", variants=variants)))
    assert len(flags["a"].variants) == 1000


def test_flag_set_from_json():
    flag_set = rollgate.FlagSet.from_json(document(flag_entry("a"), flag_entry("b", enabled=False)))
    assert sorted(flag_set) == ["a", "b"] and len(flag_set) == 2
    assert flag_set.evaluate("a", None).reason == "full-rollout"
    assert flag_set.evaluate("b", "u").reason == "disabled"
    assert flag_set.evaluate("c", "u").reason == "missing"


# -- schemaVersion 2: targeting rules and segments ---------------------------------------

TARGETED = {
    "key": "checkout",
    "enabled": True,
    "percent": 5,
    "variants": [{"name": "blue", "weight": 100}],
    "targeting": [
        {
            "name": "enterprise",
            "conditions": [{"attribute": "plan", "operator": "In", "values": ["enterprise"]}],
            "serve": {"enabled": True},
        },
        {
            "name": "beta-on-new-app",
            "conditions": [
                {"operator": "InSegment", "values": ["beta-testers"]},
                {"attribute": "appVersion", "operator": "SemverGte", "values": ["4.2"]},
                {"attribute": "seats", "operator": "Gte", "values": ["1e2"]},
                {"attribute": "email", "operator": "Exists", "values": []},
            ],
            "serve": {"percent": 50},
        },
        {
            "name": "blue",
            "conditions": [{"attribute": "targetingKey", "operator": "StartsWith", "values": ["internal-"]}],
            "serve": {"variant": "blue"},
        },
    ],
}
SEGMENT = {
    "included": ["alice"],
    "excluded": ["mallory"],
    "rules": [{"conditions": [{"attribute": "email", "operator": "EndsWith", "values": ["@example.com"]}]}],
}


def targeted_document(change=None, version=2):
    entry, segment = json.loads(json.dumps(TARGETED)), json.loads(json.dumps(SEGMENT))
    document = {"schemaVersion": version, "flags": {"checkout": entry}, "segments": {"beta-testers": segment}}
    if change is not None:
        change(entry, segment, document)
    return json.dumps(document)


def test_parses_rules_and_segments():
    parsed = rollgate.FlagDocument.from_json(targeted_document())
    assert parsed.schema_version == 2
    rules = parsed.flags["checkout"].targeting
    assert [rule.name for rule in rules] == ["enterprise", "beta-on-new-app", "blue"]
    assert rules[0].conditions == (rollgate.document.Condition("plan", "In", ("enterprise",)),)
    assert rules[1].conditions[0] == rollgate.document.Condition(None, "InSegment", ("beta-testers",))
    assert [rule.serve for rule in rules] == [("enabled", True), ("percent", 50.0), ("variant", "blue")]
    segment = parsed.segments["beta-testers"]
    assert segment.included == ("alice",) and segment.excluded == ("mallory",)
    assert segment.rules[0].conditions[0].operator == "EndsWith"
    # parse_document keeps its shape: the flags by key.
    assert parse_document(targeted_document())["checkout"] == parsed.flags["checkout"]


def test_reads_versions_1_and_2():
    assert rollgate.READABLE_SCHEMA_VERSIONS == (1, 2) and rollgate.SCHEMA_VERSION == 2
    assert parse_document(document(flag_entry("a"), schema_version=1))["a"].targeting == ()
    assert parse_document(document(flag_entry("a"), schema_version=2))["a"].targeting == ()
    assert rollgate.FlagDocument.from_json(document(flag_entry("a"))).segments == {}


def rule(index, **fields):
    """Changes the flag's rule ``index``; a field set to None is removed."""
    return lambda entry, segment, document: _update(entry["targeting"][index], fields)


def condition(rule_index, index, **fields):
    return lambda entry, segment, document: _update(entry["targeting"][rule_index]["conditions"][index], fields)


def segment(**fields):
    return lambda entry, segment, document: _update(segment, fields)


def segment_condition(**fields):
    return lambda entry, segment, document: _update(segment["rules"][0]["conditions"][0], fields)


def _update(target, fields):
    for name, value in fields.items():
        if value is None:
            target.pop(name)
        else:
            target[name] = value


RULES = "flags.checkout.targeting"
SEGMENT_RULES = "segments.beta-testers.rules"


@pytest.mark.parametrize(
    "change, message",
    [
        (rule(2, name="enterprise"), f"{RULES}[2].name: duplicate rule name 'enterprise'"),
        (rule(2, name=""), f"{RULES}[2].name: a rule needs a name"),
        (rule(0, name=None), f"{RULES}[0].name: missing field"),
        (rule(0, conditions=[]), f"{RULES}[0].conditions: a rule needs at least one condition"),
        (rule(0, conditions=None), f"{RULES}[0].conditions: missing field"),
        (rule(0, conditions={}), f"{RULES}[0].conditions: expected an array"),
        (rule(0, serve=None), f"{RULES}[0].serve: missing field"),
        (rule(0, serve=True), f"{RULES}[0].serve: expected an object"),
        (rule(0, serve={}), f"{RULES}[0].serve: serve has exactly one of enabled, variant and percent"),
        (rule(0, serve={"enabled": True, "percent": 5}), f"{RULES}[0].serve: serve has exactly one of"),
        (rule(0, serve={"on": True}), f"{RULES}[0].serve: serve has exactly one of"),
        (rule(0, serve={"enabled": "yes"}), f"{RULES}[0].serve.enabled: expected a boolean"),
        (rule(0, serve={"percent": 100.5}), f"{RULES}[0].serve.percent: 100.5 is outside 0..100"),
        (rule(0, serve={"percent": -1}), f"{RULES}[0].serve.percent: -1.0 is outside 0..100"),
        (rule(0, serve={"percent": True}), f"{RULES}[0].serve.percent: expected a number"),
        (rule(0, serve={"variant": "red"}), f"{RULES}[0].serve.variant: 'red' is not one of the flag's variants"),
        (condition(0, 0, values=[]), f"{RULES}[0].conditions[0].values: In takes 1 to 100 values, found 0"),
        (condition(0, 0, values=["x"] * 101), f"{RULES}[0].conditions[0].values: In takes 1 to 100 values, found 101"),
        (condition(1, 1, operator="Matches"), f"{RULES}[1].conditions[1].operator: unknown operator 'Matches'"),
        (condition(1, 1, operator=None), f"{RULES}[1].conditions[1].operator: missing field"),
        (condition(1, 1, attribute=None), f"{RULES}[1].conditions[1].attribute: SemverGte needs an attribute"),
        (condition(1, 1, attribute=""), f"{RULES}[1].conditions[1].attribute: SemverGte needs an attribute"),
        (condition(1, 1, attribute=7), f"{RULES}[1].conditions[1].attribute: expected a string"),
        (condition(1, 1, values=["v4.2"]), f"{RULES}[1].conditions[1].values: 'v4.2' is not a version"),
        (condition(1, 1, values=["4.2.0-01"]), f"{RULES}[1].conditions[1].values: '4.2.0-01' is not a version"),
        (condition(1, 1, values=["4.2", "5"]), f"{RULES}[1].conditions[1].values: SemverGte takes exactly one value"),
        (condition(1, 1, values=[]), f"{RULES}[1].conditions[1].values: SemverGte takes exactly one value, found 0"),
        (condition(1, 1, values=[4.2]), f"{RULES}[1].conditions[1].values[0]: expected a string"),
        (condition(1, 2, values=["+5"]), f"{RULES}[1].conditions[2].values: '+5' is not a decimal number"),
        (condition(1, 2, values=["1e"]), f"{RULES}[1].conditions[2].values: '1e' is not a decimal number"),
        (condition(1, 2, values=["\u0664"]), f"{RULES}[1].conditions[2].values: '\u0664' is not a decimal number"),
        (condition(1, 2, values=["5\n"]), f"{RULES}[1].conditions[2].values: '5\\n' is not a decimal number"),
        (condition(1, 3, values=["x"]), f"{RULES}[1].conditions[3].values: Exists takes no values, found 1"),
        (condition(1, 0, values=[]), f"{RULES}[1].conditions[0].values: InSegment names 1 to 10 segments, found 0"),
        (condition(1, 0, values=[f"s{i}" for i in range(11)]), "InSegment names 1 to 10 segments, found 11"),
        (condition(1, 0, attribute="plan"), f"{RULES}[1].conditions[0].attribute: InSegment takes no attribute"),
        (condition(2, 0, values=["a", ""]), f"{RULES}[2].conditions[0].values: StartsWith values must not be empty"),
        (lambda entry, segment, document: entry.update(targeting={}), f"{RULES}: expected an array"),
        (lambda entry, segment, document: entry.update(targeting=[5]), f"{RULES}[0]: expected an object"),
        (lambda entry, segment, document: document.update(segments=[]), "at segments: expected an object"),
        (segment(included=[1]), "segments.beta-testers.included[0]: expected a string"),
        (segment(excluded="x"), "segments.beta-testers.excluded: expected an array"),
        (segment(rules=[{}]), f"{SEGMENT_RULES}[0].conditions: missing field"),
        (segment(rules=[{"conditions": []}]), f"{SEGMENT_RULES}[0].conditions: a rule needs at least one condition"),
        (
            segment_condition(operator="InSegment", values=["other"], attribute=None),
            f"{SEGMENT_RULES}[0].conditions[0].operator: InSegment is not allowed inside a segment",
        ),
        (
            segment_condition(operator="Lt", values=["12", "x"]),
            f"{SEGMENT_RULES}[0].conditions[0].values: Lt takes exactly one value, found 2",
        ),
    ],
)
def test_invalid_rules_and_segments_name_the_path(change, message):
    with pytest.raises(FlagDocumentError) as error:
        parse_document(targeted_document(change))
    assert message in str(error.value)


def test_a_segment_the_document_does_not_carry_is_not_an_error():
    # The operator fails such a flag closed; the reader just never matches it.
    flags = rollgate.FlagSet.from_json(targeted_document(lambda e, s, d: d.pop("segments")))
    assert flags.evaluate("checkout", "alice", {"appVersion": "5.0", "seats": 500, "email": "a"}).rule is None
