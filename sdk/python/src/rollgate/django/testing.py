"""Test helpers: ``override_flag`` forces a flag for the duration of a block or test."""

from rollgate._overrides import override_flag

__all__ = ["override_flag"]
