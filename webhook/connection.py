"""One HTTPS connection of the webhook: aiohttp's request handler with a deadline per request, and a
log line and a metric for every response it writes, including the HTTP layer's own errors.

aiohttp alone closes only connections idle between requests (`keepalive_timeout`); a request
whose headers or body never finish, or whose response is read slowly, would hold its connection
and file descriptor forever. Here every request must be received and answered within
`request_timeout` of its first byte (of the connection's start, for the first one); then the
connection is closed and the timeout is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from webhook.metrics import Metrics
from webhook.requestlog import RateLimitFilter, RequestLog

SERVER_HEADER = "agentroll-webhook"
OUTCOME = "agentroll.outcome"  # request key: (uid, namespace/name, outcome, detail) set by handlers
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")

http_log = logging.getLogger("agentroll.webhook.http")
http_log.addFilter(RateLimitFilter())


@dataclass
class Recorder:
    """Where every response goes: the request log and the metrics."""

    metrics: Metrics = field(default_factory=Metrics)
    request_log: RequestLog = field(default_factory=RequestLog)

    def record(self, outcome: str, seconds: float, uid: object = "-", name: str = "-/-",
               detail: str | None = None) -> None:
        self.metrics.observe(outcome, seconds)
        self.request_log.write(uid, name, outcome, seconds, detail)

    def response(self, request: web.BaseRequest, response: web.StreamResponse,
                 seconds: float) -> None:
        info = request.get(OUTCOME)
        if info is not None:
            uid, name, outcome, detail = info
            self.record(outcome, seconds, uid, name, detail)
        elif response.status >= 400 or request.path not in QUIET_PATHS:
            detail = f"{request.method} {request.path}"
            self.record(f"http_{response.status}", seconds, detail=detail)


class _NoAccessLog(AbstractAccessLogger):
    """Keeps aiohttp timing each request; `Connection.log_access` does the logging."""

    def log(self, request, response, time) -> None:  # noqa: ANN001 - aiohttp's signature
        pass


class Connection(RequestHandler):
    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop,
                 recorder: Recorder, request_timeout: float, idle_timeout: float) -> None:
        super().__init__(manager, loop=loop, keepalive_timeout=idle_timeout,
                         access_log_class=_NoAccessLog, access_log=http_log, logger=http_log,
                         lingering_time=min(1.0, request_timeout))
        self.recorder = recorder
        self.request_timeout = request_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.receiving = False  # a request has begun and is not answered yet
        self._closing = False

    def _arm(self) -> None:
        if self._deadline is None and not self.timed_out:
            self._deadline = self._loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self.timed_out = True
        self.recorder.record("timeout", self.request_timeout,
                             detail=f"request not received and answered in {self.request_timeout:g}s")
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if data:
            self.receiving = True
            self._arm()
        super().data_received(data)

    def finish(self) -> None:
        """For shutdown: close now when idle, else after the response to the current request."""
        if self.receiving:
            self._closing = True  # close() now would drop the rest of the request's body
        else:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse,
                   time: float | None) -> None:
        self._disarm()
        self.receiving = False
        if self._closing:
            self.close()
        if self.timed_out:
            return
        seconds = self._loop.time() - time if time is not None else 0.0
        self.recorder.response(request, response, seconds)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers["Server"] = SERVER_HEADER
        if exc is not None and request.get(OUTCOME) is None:
            request[OUTCOME] = ("-", "-/-", f"http_{status}", str(exc))
        return response

    def log_exception(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - aiohttp's signature
        """A malformed request is the client's doing and its response is logged and counted
        already; anything else is one rate-limited warning line without a traceback."""
        if isinstance(kwargs.get("exc_info"), (HttpProcessingError, RequestPayloadError)):
            return
        self.logger.warning(*args, **kwargs)


def connection_factory(server: web.Server, recorder: Recorder, request_timeout: float,
                       idle_timeout: float):
    """The protocol factory for `loop.create_server`, in place of aiohttp's own `Server`."""
    loop = asyncio.get_running_loop()

    def make() -> Connection:
        return Connection(server, loop=loop, recorder=recorder, request_timeout=request_timeout,
                          idle_timeout=idle_timeout)

    return make
