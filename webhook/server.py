"""The HTTPS admission endpoint: AdmissionReview in, AdmissionReview out.

It parses and answers; what to patch is the engine's business (`kubectl_agentroll.mutate`), which
policy applies is the policy source's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import time
from collections.abc import Mapping
from typing import Protocol

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from kubectl_agentroll.mutate import Decision, mutate
from kubectl_agentroll.netadmit import NetworkView
from kubectl_agentroll.network import NetworkIndex
from kubectl_agentroll.policy import Policy
from webhook.connection import OUTCOME, SERVER_HEADER, Connection, Recorder, connection_factory
from webhook.requestlog import RateLimitFilter
from webhook.requestlog import field as log_field
from webhook.tls import ReloadingTLS

log = logging.getLogger("agentroll.webhook")

MAX_BODY_BYTES = 7 * 1024 * 1024
# How long a closing TLS connection waits for the client's close_notify before it is dropped.
TLS_SHUTDOWN_TIMEOUT = 2.0
# The API server stores objects of at most ~1.5 MiB (etcd); a larger patch could never be stored.
MAX_PATCH_BYTES = 512 * 1024
API_VERSION = "admission.k8s.io/v1"


class PolicySource(Protocol):
    ready: bool
    network: NetworkIndex | None  # agents and tool servers, when the source watches the cluster

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
    for key in ("namespace", "name"):
        if not isinstance(request.get(key), (str, type(None))):
            raise BadReview(f"request.{key} is not a string")
    return request


def review_response(uid: str, decision: Decision) -> tuple[bytes, str]:
    """The encoded AdmissionReview and its outcome; a patch over MAX_PATCH_BYTES becomes a denial
    naming the limit."""
    response: dict = {"uid": uid, "allowed": decision.allowed}
    if decision.patch:
        patch = orjson.dumps(decision.patch)
        if len(patch) > MAX_PATCH_BYTES:
            return review_response(uid, Decision(allowed=False, message=(
                f"agentroll: the mutation of this Rollout would be {len(patch):,} bytes of "
                f"JSONPatch; the webhook answers at most {MAX_PATCH_BYTES:,} (limit on the size "
                "of its mutation)"
            )))
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(patch).decode()
    if not decision.allowed:
        response["status"] = {"code": 400, "reason": "BadRequest", "message": decision.message}
    if decision.warnings:
        response["warnings"] = decision.warnings
    review = {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
    return orjson.dumps(review), decision.outcome


def _object_name(request: Mapping) -> str:
    name = request.get("name")
    if not name:
        obj = request.get("object")
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = (meta.get("name") or meta.get("generateName")) if isinstance(meta, Mapping) else None
    return f"{log_field(request.get('namespace') or '-')}/{log_field(name or '-')}"


def _error(http_request: web.Request, status: int, outcome: str, message: str) -> web.Response:
    http_request[OUTCOME] = ("-", "-/-", outcome, message)
    return web.json_response({"error": message}, status=status)


async def _read(http_request: web.Request) -> bytes | web.Response:
    """The body, or the response that says why it could not be read."""
    try:
        return await http_request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(http_request, 413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    except (HttpProcessingError, RequestPayloadError) as err:
        encoding = http_request.headers.get("Content-Encoding", "identity")
        return _error(http_request, 400, "bad_request",
                      f"body does not read as Content-Encoding {encoding}: {type(err).__name__}")
    except ConnectionError:
        return _error(http_request, 400, "aborted", "client went away before the body was complete")


def make_app(policies: PolicySource) -> web.Application:
    network = NetworkView(policies.network, policies.for_namespace) if policies.network is not None else None

    async def mutate_handler(http_request: web.Request) -> web.Response:
        body = await _read(http_request)
        if isinstance(body, web.Response):
            return body
        try:
            request = parse_review(body)
        except BadReview as err:
            return _error(http_request, 400, "bad_request", str(err))
        uid, name = request["uid"], _object_name(request)
        try:
            decision = mutate(request, policies.for_namespace(request.get("namespace")), network)
        except Exception:  # noqa: BLE001 - one bad object must not take the server down
            log.exception("uid=%s %s engine failed", log_field(uid), name)
            decision = Decision(allowed=False, message="agentroll: internal error, see webhook log")
            encoded, outcome = review_response(uid, decision)[0], "error"
        else:
            encoded, outcome = review_response(uid, decision)
        http_request[OUTCOME] = (uid, name, outcome, None)
        return web.Response(body=encoded, content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if policies.ready:
            return web.Response(text="ok")
        return web.Response(text="policy snapshot not loaded yet", status=503)

    async def server_header(_: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(server_header)
    app.router.add_post("/mutate", mutate_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", _metrics)
    return app


async def _metrics(http_request: web.Request) -> web.Response:
    metrics = http_request.app["recorder"].metrics
    return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")


async def _metrics_listener(recorder: Recorder, host: str, port: int) -> web.AppRunner:
    """GET /metrics alone, plain HTTP, on its own port: a NetworkPolicy can then admit Prometheus
    to it without admitting it to the admission port."""
    app = web.Application()
    app["recorder"] = recorder
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=30)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(app: web.Application, host: str, port: int, tls: ReloadingTLS, *,
                recorder: Recorder | None = None, shutdown_timeout: float = 10.0,
                request_timeout: float = 10.0, idle_timeout: float = 120.0,
                metrics_port: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and give open connections, in all,
    `shutdown_timeout` to finish the request they are receiving and to send its response."""
    recorder = recorder or Recorder()
    app["recorder"] = recorder
    loop = asyncio.get_running_loop()
    flood = RateLimitFilter()  # asyncio logs every failed accept() when descriptors run out
    logging.getLogger("asyncio").addFilter(flood)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0, access_log=None)
    await runner.setup()
    factory = connection_factory(runner.server, recorder, request_timeout, idle_timeout)
    listener = await loop.create_server(factory, host, port, ssl=tls.context, backlog=1024,
                                        ssl_handshake_timeout=request_timeout,
                                        ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT)
    metrics_runner = await _metrics_listener(recorder, host, metrics_port) if metrics_port else None
    watcher = asyncio.create_task(tls.watch())
    log.info("serving https://%s:%d (TLS >= 1.2)%s", host, port,
             f", metrics on http://{host}:{metrics_port}/metrics" if metrics_port else "")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        listener.close()
        connections: list[Connection] = runner.server.connections  # type: ignore[assignment]
        busy = sum(c.receiving for c in connections)
        log.info("shutting down: %d connection(s) open, %d with a request in progress",
                 len(connections), busy)
        for connection in connections:
            connection.finish()
        deadline = time.monotonic() + shutdown_timeout
        while runner.server.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if runner.server.connections:
            log.warning("gave up on %d connection(s) after %gs", len(runner.server.connections),
                        shutdown_timeout)
    finally:
        watcher.cancel()
        await runner.cleanup()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        logging.getLogger("asyncio").removeFilter(flood)
