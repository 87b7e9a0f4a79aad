"""``health``: a view for a readiness probe that fails while no flag document was read."""

from __future__ import annotations

import rollgate
from django.http import HttpRequest, JsonResponse


def health(request: HttpRequest) -> JsonResponse:
    """200 with the client's state once a good flag document is loaded, else 503.

    Until then every flag is off (the flag calls never raise because of the file), so a
    probe on this view keeps the pod out of service instead of serving everything off.
    Route it: ``path("healthz/rollgate", rollgate.django.views.health)``.
    """
    state = rollgate.default_client().health()
    return JsonResponse(state, status=200 if state["ok"] else 503)
