"""The HTTPS admission endpoint: AdmissionReview in, AdmissionReview out.

It parses and answers; what to patch is the engine's business (`kubectl_agentroll.mutate`), which
policy applies is the policy source's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import sys
import time
from collections.abc import Mapping
from typing import Protocol, TextIO

import orjson
from aiohttp import web

from kubectl_agentroll.mutate import Decision, mutate
from kubectl_agentroll.policy import Policy
from webhook.metrics import Metrics
from webhook.tls import ReloadingTLS

log = logging.getLogger("agentroll.webhook")

MAX_BODY_BYTES = 7 * 1024 * 1024
API_VERSION = "admission.k8s.io/v1"


class PolicySource(Protocol):
    ready: bool

    def for_namespace(self, namespace: str | None) -> Policy: ...


class BadReview(ValueError):
    pass


def parse_review(body: bytes) -> Mapping:
    """The `request` of an admission.k8s.io/v1 AdmissionReview; BadReview says what is wrong."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadReview("body is not JSON") from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise BadReview("body is not an AdmissionReview")
    if review.get("apiVersion") != API_VERSION:
        got = review.get("apiVersion")
        raise BadReview(f"apiVersion {got!r} is not supported; use {API_VERSION}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("AdmissionReview has no request")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("request.uid is missing")
    return request


def review_response(uid: str, decision: Decision) -> dict:
    response: dict = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": 400, "reason": "BadRequest", "message": decision.message}
    if decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(decision.patch)).decode()
    if decision.warnings:
        response["warnings"] = decision.warnings
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _object_name(request: Mapping) -> str:
    name = request.get("name")
    if not name:
        obj = request.get("object")
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = (meta.get("name") or meta.get("generateName")) if isinstance(meta, Mapping) else None
    return f"{request.get('namespace') or '-'}/{name or '-'}"


class InFlight:
    """Counts admission requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self.idle.clear()

    def __exit__(self, *_) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


class RequestLog:
    """One line per admission request: time, uid, namespace/name, outcome, milliseconds.

    Written straight to the stream: at thousands of requests a second the `logging` module's
    record machinery cost more than deciding the request itself.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._second = -1
        self._stamp = ""

    def write(self, uid: str, name: str, outcome: str, seconds: float) -> None:
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        millis = int((now % 1) * 1000)
        stream = self.stream or sys.stderr
        stream.write(
            f"{self._stamp}.{millis:03d}Z uid={uid} {name} {outcome} {seconds * 1000:.2f}ms\n"
        )


def make_app(
    policies: PolicySource, metrics: Metrics | None = None, request_log: RequestLog | None = None
) -> web.Application:
    metrics = metrics or Metrics()
    request_log = request_log or RequestLog()

    inflight = InFlight()

    async def mutate_handler(http_request: web.Request) -> web.Response:
        with inflight:
            return await _mutate(http_request)

    async def _mutate(http_request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await http_request.read()
            request = parse_review(body)
        except BadReview as err:
            elapsed = time.perf_counter() - started
            metrics.observe("bad_request", elapsed)
            request_log.write("-", "-/-", f"bad_request ({err})", elapsed)
            return web.json_response({"error": str(err)}, status=400)
        try:
            decision = mutate(request, policies.for_namespace(request.get("namespace")))
        except Exception:  # noqa: BLE001 - one bad object must not take the server down
            log.exception("uid=%s %s engine failed", request["uid"], _object_name(request))
            decision = Decision(allowed=False, message="agentroll: internal error, see webhook log")
            outcome = "error"
        else:
            outcome = decision.outcome
        elapsed = time.perf_counter() - started
        metrics.observe(outcome, elapsed)
        request_log.write(request["uid"], _object_name(request), outcome, elapsed)
        return web.Response(
            body=orjson.dumps(review_response(request["uid"], decision)),
            content_type="application/json",
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if policies.ready:
            return web.Response(text="ok")
        return web.Response(text="policy snapshot not loaded yet", status=503)

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app["metrics"] = metrics
    app["inflight"] = inflight
    app.router.add_post("/mutate", mutate_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def serve(
    app: web.Application, host: str, port: int, tls: ReloadingTLS, shutdown_timeout: float = 10.0
) -> None:
    """Serve until SIGTERM/SIGINT; requests in flight then get `shutdown_timeout` to finish."""
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=shutdown_timeout, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls.context, backlog=1024)
    await site.start()
    watcher = asyncio.create_task(tls.watch())
    log.info("serving https://%s:%d (TLS >= 1.2)", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        inflight: InFlight = app["inflight"]
        log.info("shutting down: %d request(s) in flight", inflight.count)
        await site.stop()
        try:
            await asyncio.wait_for(inflight.idle.wait(), shutdown_timeout)
        except asyncio.TimeoutError:
            log.warning("gave up on %d request(s) after %.0fs", inflight.count, shutdown_timeout)
    finally:
        watcher.cancel()
        await runner.cleanup()
