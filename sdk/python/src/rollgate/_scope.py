"""The request scope that flag evaluations report to, when one is open.

Kept apart from :mod:`rollgate.metrics` so that the client needs neither
``prometheus_client`` nor the metrics code: outside a scope an evaluation costs one
``ContextVar.get``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional

#: The open :class:`rollgate.metrics.RequestScope` of this thread or task, or None.
CURRENT_SCOPE: ContextVar[Optional[Any]] = ContextVar("rollgate_request_scope", default=None)

#: ``CURRENT_SCOPE.get``, bound once: on CPython 3.11 ``CURRENT_SCOPE.get()`` in the client
#: nearly doubled a missing-flag ``flag_enabled``; the bound call is within the noise.
current_scope = CURRENT_SCOPE.get
