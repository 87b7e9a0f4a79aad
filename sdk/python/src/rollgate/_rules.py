"""Bucketing and evaluation: the rules of docs/evaluation.md and docs/targeting.md, as in the
Rust SDK.

``H`` is the SHA-256 digest of ``"<key>:<user>"`` (UTF-8) read as a 256-bit big-endian
integer, ``f = H mod 10000`` and the rank is ``(f mod 100)·100 + ⌊f/100⌋``. A user is in
at percent ``p`` iff ``rank < round(p·100)``; for whole ``p`` that is exactly the old
Django helper's ``int(sha256(...).hexdigest(), 16) % 100 < p``.
"""

from __future__ import annotations

import math
import numbers
import operator
from functools import lru_cache, partial
from hashlib import sha256
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple

from .document import NUMBER_PATTERN, Condition, FlagEntry, Segment, TargetingRule, parse_version

RANK_SCALE = 10_000

# rank of f = H mod 10000, as a table: indexing is cheaper than the arithmetic.
_RANK_OF = tuple((f % 100) * 100 + f // 100 for f in range(RANK_SCALE))
_from_bytes = int.from_bytes


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot come from a JSON document or a Django primary key, but a
        # caller could pass one; hash them deterministically instead of raising.
        return text.encode("utf-8", "surrogatepass")


def _rank(data: bytes) -> int:
    return _RANK_OF[_from_bytes(sha256(data).digest(), "big") % RANK_SCALE]


def rollout_rank(key: str, user: str) -> int:
    """The rank (0..10000) of ``user`` in the rollout of flag ``key``."""
    return _rank(_utf8(f"{key}:{user}"))


def variant_rank(key: str, salt: str, user: str) -> int:
    """The rank used to pick a variant: ``sha256("<key>:<salt>:variant:<user>")``."""
    return _rank(_utf8(f"{key}:{salt}:variant:{user}"))


def legacy_bucket(key: str, user: str) -> int:
    """The Django helper's bucket, ``H mod 100``."""
    return _from_bytes(sha256(_utf8(f"{key}:{user}")).digest(), "big") % 100


def percent_threshold(percent: float) -> int:
    """``round(percent·100)`` clamped to 0..10000, halves rounded away from zero.

    NaN and percents <= 0 give 0 (a corrupt value can only turn a flag off); >= 100 gives
    10000. ``percent * 100`` is one double multiplication, as in Rust; Python's ``round``
    (halves to even) is not used because Rust's ``f64::round`` rounds 12.5 to 13.
    """
    percent = float(percent)
    if percent != percent or percent <= 0.0:
        return 0
    if percent >= 100.0:
        return RANK_SCALE
    scaled = percent * 100.0
    whole = math.floor(scaled)
    # scaled - whole is exact for doubles below 2^52.
    return int(whole) + 1 if scaled - whole >= 0.5 else int(whole)


class Evaluation(NamedTuple):
    """The answer for one (flag, user)."""

    enabled: bool
    #: The variant, for flags with variants when the user is on.
    variant: Optional[str]
    #: missing, disabled, targeting-match, shipped, no-user, allow-list, full-rollout, percent
    #: (or override).
    reason: str
    #: The user's rollout rank (0..10000), reported when the reason is ``percent``, and for
    #: ``targeting-match`` when the rule serves a percent below 100% to a user with an id.
    rank: Optional[int]
    #: The name of the targeting rule that decided the answer, else None.
    rule: Optional[str] = None

    def __bool__(self) -> bool:
        # A non-empty tuple is always true; `if flags.evaluate(...)` must mean "enabled".
        return self.enabled


MISSING = Evaluation(False, None, "missing", None)
DISABLED = Evaluation(False, None, "disabled", None)
NO_USER = Evaluation(False, None, "no-user", None)
FULL_ROLLOUT_NO_USER = Evaluation(True, None, "full-rollout", None)

# Builds an Evaluation from a tuple of all five fields without NamedTuple's Python-level
# __new__, which is a third of the cost of an answer on the hot path.
_answer = partial(tuple.__new__, Evaluation)


class CompiledFlag:
    """A flag prepared for evaluation: thresholds precomputed, allow-list hashed."""

    __slots__ = (
        "key",
        "enabled",
        "threshold",
        "full",
        "allowed_users",
        "variants",
        "salt",
        "coverage_threshold",
        "shipped_variant",
        "_hasher",
        "_variant_hasher",
        "_shipped",
        "_always",
    )

    def __init__(self, entry: FlagEntry) -> None:
        self.key = entry.key
        self.enabled = entry.enabled
        self.threshold = percent_threshold(entry.percent)
        self.full = self.threshold >= RANK_SCALE
        self.allowed_users = frozenset(entry.allowed_users)
        cumulative = 0.0
        variants = []
        for variant in entry.variants:
            cumulative += variant.weight  # left to right, as Rust's running sum
            variants.append((variant.name, percent_threshold(cumulative)))
        self.variants = tuple(variants)
        if entry.experiment is not None:
            self.salt = entry.experiment.salt
            self.coverage_threshold = percent_threshold(entry.experiment.coverage)
        else:
            self.salt = entry.key
            self.coverage_threshold = RANK_SCALE
        self.shipped_variant = entry.shipped_variant
        # Hashers that have already consumed "<key>:" and "<key>:<salt>:variant:";
        # copying one is cheaper than hashing the prefix again for every user.
        self._hasher = sha256(_utf8(self.key + ":"))
        self._variant_hasher = sha256(_utf8(f"{self.key}:{self.salt}:variant:"))
        self._shipped = (
            None if entry.shipped_variant is None else Evaluation(True, entry.shipped_variant, "shipped", None)
        )
        # is_enabled's answer when it does not depend on the user: off, shipped, or at 100%.
        self._always: Optional[bool] = None
        if not self.enabled:
            self._always = False
        elif self._shipped is not None or self.full:
            self._always = True

    def _rollout_rank(self, user: str) -> int:
        hasher = self._hasher.copy()
        try:
            hasher.update(user.encode("utf-8"))
        except UnicodeEncodeError:
            hasher.update(_utf8(user))
        return _RANK_OF[_from_bytes(hasher.digest(), "big") % RANK_SCALE]

    def is_enabled(self, user: Optional[str], context: Optional[Mapping[str, Any]] = None) -> bool:
        """``evaluate(user).enabled`` without computing the variant. A flag without rules
        does not look at ``context``."""
        always = self._always
        if always is not None:
            return always
        if user is None:
            return False
        if user in self.allowed_users:
            return True
        return self._rollout_rank(user) < self.threshold

    def evaluate(self, user: Optional[str], context: Optional[Mapping[str, Any]] = None) -> Evaluation:
        """The reference order: disabled; shipped; no user; allow-list; 100%; percent."""
        if not self.enabled:
            return DISABLED
        if self._shipped is not None:
            return self._shipped
        if user is None:
            return FULL_ROLLOUT_NO_USER if self.full else NO_USER
        if user in self.allowed_users:
            return _answer((True, self._variant(None, user), "allow-list", None, None))
        if self.full:
            return _answer((True, self._variant(None, user), "full-rollout", None, None))
        rank = self._rollout_rank(user)
        if rank < self.threshold:
            return _answer((True, self._variant(rank, user), "percent", rank, None))
        return _answer((False, None, "percent", rank, None))

    def _variant(self, rank: Optional[int], user: str) -> Optional[str]:
        """Experiment membership reuses the rollout rank; the arm comes from a second,
        independent hash over fixed cumulative ranges, so changing the coverage never
        moves a user from one arm to another."""
        if not self.variants:
            return None
        if self.coverage_threshold < RANK_SCALE:
            if rank is None:
                rank = self._rollout_rank(user)
            if rank >= self.coverage_threshold:
                return None
        hasher = self._variant_hasher.copy()
        hasher.update(_utf8(user))
        arm = _RANK_OF[_from_bytes(hasher.digest(), "big") % RANK_SCALE]
        for name, bound in self.variants:
            if arm < bound:
                return name
        return self.variants[-1][0]

    def __repr__(self) -> str:
        return f"CompiledFlag(key={self.key!r}, enabled={self.enabled}, threshold={self.threshold})"


# --------------------------------------------------------------------------------------
# Targeting (docs/targeting.md): each condition is compiled once, when the document
# loads, into a function of (user id, context); values are parsed then, not per call.
# --------------------------------------------------------------------------------------

_STRING, _NUMBER, _BOOLEAN, _LIST, _OTHER = range(5)
_KIND_OF_TYPE = {str: _STRING, int: _NUMBER, float: _NUMBER, bool: _BOOLEAN, list: _LIST, tuple: _LIST}
_COMPARE = {"Lt": operator.lt, "Lte": operator.le, "Gt": operator.gt, "Gte": operator.ge}
_VERSION_COMPARE = {"SemverLt": operator.lt, "SemverGte": operator.ge, "SemverEq": operator.eq}
TARGETING_MATCH = "targeting-match"

ConditionTest = Callable[[Optional[str], Optional[Mapping[str, Any]]], bool]


def _kind(value: Any) -> int:
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
    # Subclasses. bool is an int, so it is tested before the numbers.
    if isinstance(value, str):
        return _STRING
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, numbers.Real):
        return _NUMBER
    if isinstance(value, (list, tuple)):
        return _LIST
    return _OTHER


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int past the doubles: the nearest double is infinite
        return math.inf if value > 0 else -math.inf


def _is_string_list(value: Any) -> bool:
    # A list with anything but strings in it is not a string list.
    return all(isinstance(item, str) for item in value)


# Contexts usually repeat a handful of versions (app versions): parse each once.
_version_key = lru_cache(maxsize=1024)(parse_version)


def _membership(values: Tuple[str, ...]) -> Callable[[Any], Optional[bool]]:
    """``In`` of a present attribute: True or False, or None for a type ``In`` does not take."""
    strings = frozenset(values)
    as_numbers = frozenset(float(v) for v in values if NUMBER_PATTERN.fullmatch(v))
    if_true, if_false = "true" in strings, "false" in strings

    def test(value: Any) -> Optional[bool]:
        kind = _kind(value)
        if kind == _STRING:
            return value in strings
        if kind == _NUMBER:
            return _as_float(value) in as_numbers
        if kind == _BOOLEAN:
            return if_true if value else if_false
        if kind == _LIST and _is_string_list(value):
            return not strings.isdisjoint(value)
        return None

    return test


def _value_test(condition: Condition) -> Callable[[Any], bool]:
    """The test of a present attribute value for ``condition``'s operator."""
    op, values = condition.operator, condition.values
    if op == "Exists":
        return lambda value: True
    if op == "In":
        member = _membership(values)
        return lambda value: member(value) is True
    if op == "NotIn":
        member = _membership(values)
        return lambda value: member(value) is False
    if op in ("StartsWith", "EndsWith", "Contains"):
        needles = tuple(values)
        if op == "StartsWith":
            matches: Callable[[str], bool] = lambda text: text.startswith(needles)  # noqa: E731
        elif op == "EndsWith":
            matches = lambda text: text.endswith(needles)  # noqa: E731
        else:
            matches = lambda text: any(needle in text for needle in needles)  # noqa: E731

        def affix(value: Any) -> bool:
            kind = _kind(value)
            if kind == _STRING:
                return matches(value)
            return kind == _LIST and _is_string_list(value) and any(matches(text) for text in value)

        return affix
    if op in _COMPARE:
        compare, bound = _COMPARE[op], float(values[0])
        return lambda value: _kind(value) == _NUMBER and compare(_as_float(value), bound)
    if op in _VERSION_COMPARE:
        compare_versions, version = _VERSION_COMPARE[op], parse_version(values[0])

        def semver(value: Any) -> bool:
            if _kind(value) != _STRING:
                return False
            key = _version_key(str.__str__(value))
            return key is not None and compare_versions(key, version)

        return semver
    raise ValueError(f"unknown operator {op!r}")  # the document reader refuses these


def _compile_condition(condition: Condition, segments: Mapping[str, "CompiledSegment"]) -> ConditionTest:
    if condition.operator == "InSegment":
        # A segment the document does not carry never matches.
        named = tuple(segments[name] for name in condition.values if name in segments)
        return lambda user, context: any(segment.contains(user, context) for segment in named)
    test = _value_test(condition)
    if condition.attribute == "targetingKey":  # the user id; a context attribute of that name is ignored
        return lambda user, context: user is not None and test(user)
    attribute = condition.attribute

    def holds(user: Optional[str], context: Optional[Mapping[str, Any]]) -> bool:
        if not context:
            return False
        value = context.get(attribute)
        # An attribute set to None is absent.
        return value is not None and test(value)

    return holds


def _all(tests: Tuple[ConditionTest, ...], user: Optional[str], context: Optional[Mapping[str, Any]]) -> bool:
    for test in tests:
        if not test(user, context):
            return False
    return True


class CompiledSegment:
    """A segment prepared for membership tests."""

    __slots__ = ("included", "excluded", "rules")

    def __init__(self, segment: Segment) -> None:
        self.included = frozenset(segment.included)
        self.excluded = frozenset(segment.excluded)
        # InSegment is not allowed inside a segment, so no segments are needed here.
        self.rules = tuple(tuple(_compile_condition(c, {}) for c in rule.conditions) for rule in segment.rules)

    def contains(self, user: Optional[str], context: Optional[Mapping[str, Any]]) -> bool:
        """Not excluded, and included or matched by a rule."""
        if user is not None:
            if user in self.excluded:
                return False
            if user in self.included:
                return True
        return any(_all(rule, user, context) for rule in self.rules)


def compile_segments(segments: Mapping[str, Segment]) -> Dict[str, CompiledSegment]:
    return {name: CompiledSegment(segment) for name, segment in segments.items()}


class CompiledRule:
    """A rule's conditions and what it serves. ``threshold`` is the rank bound of
    ``enabled: true`` (10000) and ``percent``; ``fixed`` is the answer of ``enabled:
    false`` and ``variant``, which do not depend on the user."""

    __slots__ = ("name", "conditions", "threshold", "fixed", "no_user")

    def __init__(self, rule: TargetingRule, segments: Mapping[str, CompiledSegment]) -> None:
        self.name = rule.name
        self.conditions = tuple(_compile_condition(c, segments) for c in rule.conditions)
        kind, value = rule.serve
        self.fixed: Optional[Evaluation] = None
        self.threshold = RANK_SCALE
        if kind == "enabled" and not value:
            self.fixed = Evaluation(False, None, TARGETING_MATCH, None, rule.name)
        elif kind == "variant":
            self.fixed = Evaluation(True, str(value), TARGETING_MATCH, None, rule.name)
        elif kind == "percent":
            self.threshold = percent_threshold(float(value))
        self.no_user = Evaluation(False, None, "no-user", None, rule.name)


class TargetedFlag(CompiledFlag):
    """A flag with targeting rules: the first rule whose conditions all hold decides,
    after the kill switch; the other users get the plain flag's answer (the fallthrough).
    Flags without rules stay plain :class:`CompiledFlag` s, so their path is unchanged."""

    __slots__ = ("rules", "_rules_without_context")

    def __init__(self, entry: FlagEntry, segments: Mapping[str, CompiledSegment]) -> None:
        super().__init__(entry)
        self.rules = tuple(CompiledRule(rule, segments) for rule in entry.targeting)
        # Whether a rule can match an empty context: one whose conditions all test the user
        # id or segments. Without one, a call without a context goes straight to the fallthrough.
        self._rules_without_context = any(
            all(c.operator == "InSegment" or c.attribute == "targetingKey" for c in rule.conditions)
            for rule in entry.targeting
        )

    def _matching_rule(self, user: Optional[str], context: Optional[Mapping[str, Any]]) -> Optional[CompiledRule]:
        for rule in self.rules:
            if _all(rule.conditions, user, context):
                return rule
        return None

    def is_enabled(self, user: Optional[str], context: Optional[Mapping[str, Any]] = None) -> bool:
        # The variant a rule may compute is a second hash only for flags with variants.
        return self.evaluate(user, context).enabled

    def evaluate(self, user: Optional[str], context: Optional[Mapping[str, Any]] = None) -> Evaluation:
        """Disabled; the first matching rule; else the plain flag's order."""
        if not self.enabled:
            return DISABLED
        rule = self._matching_rule(user, context) if context or self._rules_without_context else None
        if rule is None:
            return CompiledFlag.evaluate(self, user)
        if rule.fixed is not None:
            return rule.fixed
        if rule.threshold >= RANK_SCALE:
            return _answer((True, self._rule_variant(user, None), TARGETING_MATCH, None, rule.name))
        if user is None:
            return rule.no_user
        rank = self._rollout_rank(user)  # the flag's own rank, as its percent uses
        if rank < rule.threshold:
            return _answer((True, self._rule_variant(user, rank), TARGETING_MATCH, rank, rule.name))
        return _answer((False, None, TARGETING_MATCH, rank, rule.name))

    def _rule_variant(self, user: Optional[str], rank: Optional[int]) -> Optional[str]:
        """The variant of a user a rule turns on: the shipped winner, else their arm."""
        if self.shipped_variant is not None:
            return self.shipped_variant
        return None if user is None else self._variant(rank, user)

    def __repr__(self) -> str:
        return f"TargetedFlag(key={self.key!r}, enabled={self.enabled}, rules={len(self.rules)})"


def compile_flag(entry: FlagEntry, segments: Mapping[str, CompiledSegment]) -> CompiledFlag:
    """A :class:`TargetedFlag` for a flag with rules, else a plain :class:`CompiledFlag`."""
    return TargetedFlag(entry, segments) if entry.targeting else CompiledFlag(entry)
