"""``override_flag``: force a flag on or off in tests, for every client in the process."""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable, Dict, List, Optional

from ._rules import Evaluation

#: key → forced answer. Read without a lock by every client (a dict lookup is atomic);
#: an empty dict costs one truth test per call.
OVERRIDES: Dict[str, Evaluation] = {}
_LOCK = threading.Lock()
_ABSENT = object()


class override_flag:
    """Force ``key`` on (optionally with ``variant``) or off.

    As a context manager::

        with override_flag("new-checkout", active=True, variant="treatment"):
            ...

    As a decorator of a function (sync or async) or of a test class (every ``test*``
    method is wrapped, like ``unittest.mock.patch``)::

        @override_flag("new-checkout", active=False)
        def test_old_checkout(client): ...

    The override wins over the flag document in every :class:`rollgate.Flags` client and
    in the module-level helpers, the ``{% flag %}`` tag and ``@flag_required``. Its
    reason is ``"override"``. Overrides nest; leaving one restores what was there before.
    """

    def __init__(self, key: str, active: bool = True, variant: Optional[str] = None) -> None:
        if not active and variant is not None:
            raise ValueError("override_flag: a variant is only given to an active flag")
        self.key = key
        self.evaluation = Evaluation(bool(active), variant if active else None, "override", None)
        self._saved: List[Any] = []

    def __enter__(self) -> "override_flag":
        with _LOCK:
            self._saved.append(OVERRIDES.get(self.key, _ABSENT))
            OVERRIDES[self.key] = self.evaluation
        return self

    def __exit__(self, *exc_info: Any) -> None:
        with _LOCK:
            previous = self._saved.pop()
            if previous is _ABSENT:
                OVERRIDES.pop(self.key, None)
            else:
                OVERRIDES[self.key] = previous

    def __call__(self, target: Callable) -> Callable:
        if inspect.isclass(target):
            for name in dir(target):
                if name.startswith("test"):
                    attribute = getattr(target, name)
                    if callable(attribute):
                        setattr(target, name, self.__call__(attribute))
            return target
        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await target(*args, **kwargs)

            return async_wrapper

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return target(*args, **kwargs)

        return wrapper
