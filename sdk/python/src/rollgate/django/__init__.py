"""Django integration: add ``"rollgate.django"`` to ``INSTALLED_APPS``.

- ``{% load rollgate %}`` then ``{% flag "key" %}…{% else %}…{% endflag %}``, which
  evaluates for ``request.user`` when the context has a request (the ``request`` context
  processor), or for ``user=…`` when given: ``{% flag "key" user=order.owner %}``.
  ``{% flag_variant "key" as arm %}`` stores the user's variant.
- ``rollgate.django.decorators.flag_required("key")``: the view raises ``Http404`` when
  the flag is off for ``request.user``.
- ``rollgate.django.testing.override_flag(key, active=True, variant=None)`` for tests.
- ``rollgate.django.views.health``: 503 until a good flag document was read, then 200, with
  the client's state as JSON; for a readiness probe.
- ``rollgate.django.middleware.CohortMetricsMiddleware``: counts every request in
  ``rollgate_flag_requests_total{flag, cohort, outcome}`` for the flags it evaluated
  (needs ``rollgate[metrics]``; settings ``ROLLGATE_METRICS_LATENCY`` and
  ``ROLLGATE_METRICS_REGISTRY``).
- The setting ``ROLLGATE_FLAGS_PATH`` chooses the file; changing it (``override_settings``)
  resets the default client.
- The setting ``ROLLGATE_CONTEXT`` names a callable (dotted path) that builds a user's
  evaluation context, the attributes targeting rules test; the tags and ``@flag_required``
  pass it (:mod:`rollgate.django.context`).
"""

from .decorators import flag_required
from .testing import override_flag

__all__ = ["flag_required", "override_flag"]
