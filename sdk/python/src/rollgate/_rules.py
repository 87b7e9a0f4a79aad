"""Bucketing and evaluation: the rules of docs/evaluation.md, as in the Rust SDK.

``H`` is the SHA-256 digest of ``"<key>:<user>"`` (UTF-8) read as a 256-bit big-endian
integer, ``f = H mod 10000`` and the rank is ``(f mod 100)·100 + ⌊f/100⌋``. A user is in
at percent ``p`` iff ``rank < round(p·100)``; for whole ``p`` that is exactly the old
Django helper's ``int(sha256(...).hexdigest(), 16) % 100 < p``.
"""

from __future__ import annotations

import math
from hashlib import sha256
from typing import NamedTuple, Optional

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
    #: missing, disabled, shipped, no-user, allow-list, full-rollout, percent (or override).
    reason: str
    #: The user's rollout rank (0..10000), reported only when the reason is ``percent``.
    rank: Optional[int]

    def __bool__(self) -> bool:
        # A non-empty tuple is always true; `if flags.evaluate(...)` must mean "enabled".
        return self.enabled


MISSING = Evaluation(False, None, "missing", None)
DISABLED = Evaluation(False, None, "disabled", None)
NO_USER = Evaluation(False, None, "no-user", None)
FULL_ROLLOUT_NO_USER = Evaluation(True, None, "full-rollout", None)


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
    )

    def __init__(self, entry) -> None:
        """``entry`` is a :class:`rollgate.document.FlagEntry`."""
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

    def _rollout_rank(self, user: str) -> int:
        hasher = self._hasher.copy()
        try:
            hasher.update(user.encode("utf-8"))
        except UnicodeEncodeError:
            hasher.update(_utf8(user))
        return _RANK_OF[_from_bytes(hasher.digest(), "big") % RANK_SCALE]

    def is_enabled(self, user: Optional[str]) -> bool:
        """``evaluate(user).enabled`` without computing the variant."""
        if not self.enabled:
            return False
        if self._shipped is not None:
            return True
        if user is None:
            return self.full
        if self.full or user in self.allowed_users:
            return True
        return self._rollout_rank(user) < self.threshold

    def evaluate(self, user: Optional[str]) -> Evaluation:
        """The reference order: disabled; shipped; no user; allow-list; 100%; percent."""
        if not self.enabled:
            return DISABLED
        if self._shipped is not None:
            return self._shipped
        if user is None:
            return FULL_ROLLOUT_NO_USER if self.full else NO_USER
        if user in self.allowed_users:
            return Evaluation(True, self._variant(None, user), "allow-list", None)
        if self.full:
            return Evaluation(True, self._variant(None, user), "full-rollout", None)
        rank = self._rollout_rank(user)
        if rank < self.threshold:
            return Evaluation(True, self._variant(rank, user), "percent", rank)
        return Evaluation(False, None, "percent", rank)

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
