"""A local stand-in for an outside system, served over real HTTP in a thread: the base of
the fakes that `make run` and the tests talk to (Twilio's Messages API in
members/twilio_fake.py, Cova's in tests/integrations/cova_fake.py)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class ThreadedFakeServer:
    """start() serves `handler_class` (its `fake` attribute is this object) on a free port
    unless one is given; `url` is where; close() stops it. Also a context manager."""

    handler_class: type
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0):
        handler = type("Handler", (self.handler_class,), {"fake": self})
        self._server = self.server_class((host, port), handler)
        self._server.daemon_threads = True
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        # A short poll interval keeps shutdown (and so each test's teardown) fast.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self if self._server else self.start()

    def __exit__(self, *exc) -> None:
        self.close()
