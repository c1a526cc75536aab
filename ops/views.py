"""Probes for load balancers and orchestrators. ProbeMiddleware answers them before the
https redirect and the ALLOWED_HOSTS check; these routes serve the same views to anything
that reaches the URL resolver (and give them names for reverse())."""

from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from .checks import CHECKS, readiness


def _no_store(response):
    add_never_cache_headers(response)
    return response


@require_safe
def healthz(request):
    """The process answers: no database, no Redis."""
    return _no_store(JsonResponse({"status": "ok"}))


@require_safe
def readyz(request):
    """Database, cache, broker, migrations, a worker's and beat's heartbeats: 200 when all
    pass, else 503. `?skip=worker,beat` leaves checks out (a web node's own readiness
    should not hang on the workers)."""
    skip = {name.strip() for name in request.GET.get("skip", "").split(",")} & set(CHECKS)
    answer = readiness(skip=skip)
    return _no_store(JsonResponse(answer, status=200 if answer["status"] == "ok" else 503))
