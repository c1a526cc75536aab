from .views import healthz, readyz

PROBES = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answers GET /healthz and /readyz before the middleware that would refuse a load
    balancer's probe: it comes over plain http (SECURE_SSL_REDIRECT) with the pod's address
    as Host, which ALLOWED_HOSTS does not list (CommonMiddleware would answer 400). Nothing
    in these answers is built from the Host header. Goes right after RequestIdMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = PROBES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
