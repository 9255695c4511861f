"""The canary judge Argo calls: GET /v1/verdict -> continue | fail | pass | inconclusive.

Stateless: every answer is recomputed from Prometheus over the planned looks since the canary
began (`webhook/evidence.py`), so any replica gives the same answer and `at=` replays a past one.
It runs as its own process (`agentroll-webhook judge`), not inside the admission server: the
decision maths is CPU work and a slow Prometheus is I/O neither may add to admission latency,
which sits in every `kubectl apply` of a Rollout.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Mapping, Sequence
from functools import partial

import aiohttp
import orjson
from aiohttp import web

from kubectl_agentroll.judge import Verdict, decide, designs
from kubectl_agentroll.mutate import look_plan
from kubectl_agentroll.network import readiness
from kubectl_agentroll.plan import Plan, parse_duration
from kubectl_agentroll.policy import BUILTIN_DEFAULT_STEPS, Policy
from webhook import evidence
from webhook.judgemetrics import JudgeMetrics

log = logging.getLogger("agentroll.judge")

MAX_LOOKBACK_S = 24 * 3600
QUERY_CONCURRENCY = 8
SESSION = web.AppKey("session", aiohttp.ClientSession)
# The plan the webhook injects for the built-in default policy: its boundaries are computed before
# the server listens, so the first verdict of a default rollout does not pay for them.
DEFAULT_PLAN = Plan.parse(look_plan(BUILTIN_DEFAULT_STEPS, Policy.look_interval), Policy.look_interval)


class BadParameter(ValueError):
    """A query parameter the judge cannot use; the message names it."""


class PrometheusError(RuntimeError):
    """Prometheus could not answer; the judge answers 502 and Argo records an Error."""


def parse_time(text: str) -> float:
    """Unix seconds, or RFC 3339 (`2026-11-26T12:00:00Z`)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(f"at: {text!r} is neither unix seconds nor RFC 3339") from None
    if stamp.tzinfo is None:
        raise BadParameter(f"at: {text!r} has no time zone (add Z)")
    return stamp.timestamp()


def parse_request(query: Mapping[str, str], now: float) -> tuple[evidence.Target, Plan, bool, float]:
    def required(name: str) -> str:
        value = query.get(name, "").strip()
        if not value:
            raise BadParameter(f"{name}: required")
        return value

    try:
        target = evidence.Target(required("namespace"), required("rollout"), required("canary-hash"),
                                 required("stable-hash"))
        interval = parse_duration(query.get("interval", "60s"), "interval")
        plan = Plan.parse(required("plan"), interval)
    except ValueError as e:
        raise BadParameter(str(e)) from None
    step_end = query.get("step-end", "false").lower()
    if step_end not in ("true", "false"):
        raise BadParameter(f"step-end: {step_end!r} is not true or false")
    at = parse_time(query["at"]) if query.get("at") else now
    if not math.isfinite(at) or at > now + 60:
        raise BadParameter("at: must not be in the future")
    return target, plan, step_end == "true", at


class Prometheus:
    """Bounded instant queries against Prometheus's HTTP API."""

    def __init__(self, session: aiohttp.ClientSession, address: str, timeout_s: float):
        self.session, self.address, self.timeout = session, address.rstrip("/"), timeout_s

    async def query(self, promql: str, at: float) -> list[dict]:
        try:
            async with self.session.post(f"{self.address}/api/v1/query",
                                         data={"query": promql, "time": f"{at:.3f}",
                                               "timeout": f"{self.timeout:g}s"},
                                         timeout=aiohttp.ClientTimeout(total=self.timeout + 1)) as r:
                body = await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise PrometheusError(f"Prometheus at {self.address} unreachable: "
                                  f"{type(e).__name__}: {e}") from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PrometheusError(f"Prometheus answered HTTP {r.status}, not JSON") from None
        if data.get("status") != "success":
            detail = f"{data.get('errorType', r.status)}: {data.get('error', '')}"
            raise PrometheusError(f"Prometheus: {detail}"[:300])
        return data["data"]["result"]


async def judge(prom: Prometheus, target: evidence.Target, plan: Plan, step_end: bool,
                at: float) -> tuple[Verdict | None, dict]:
    """The verdict at `at`, and facts about how it was reached (for the response and the log)."""
    lookback = int(min(max(3 * plan.total_s, 3600), MAX_LOOKBACK_S))
    resolution = max(1, int(min(plan.interval_s / 10, 15)))  # the canary's start, within seconds
    result = await prom.query(evidence.canary_start_query(target, lookback, resolution), at)
    if not result or not math.isfinite(float(result[0]["value"][1])):
        return None, {"canaryStart": None}
    start = float(result[0]["value"][1])
    times = evidence.look_times(plan, at - start)
    facts = {"canaryStart": start, "elapsedSeconds": round(at - start, 3), "looks": len(times)}
    if not times:
        return None, facts
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(t: float) -> list[dict]:
        async with gate:
            return await prom.query(evidence.look_query(target, t), start + t)

    results = await asyncio.gather(*(one(t) for t in times))
    looks = [evidence.look(plan, t, r, target) for t, r in zip(times, results, strict=True)]
    verdict = await asyncio.get_running_loop().run_in_executor(None, partial(decide, looks, plan,
                                                                              step_end=step_end))
    return verdict, facts


def no_data_answer(step_end: bool, facts: dict, target: evidence.Target) -> dict:
    """Before the first planned look (or before any canary series exists)."""
    if facts.get("canaryStart") is None:
        reason = (f"no agentroll_tasks_total series for canary {target.canary_hash} in namespace "
                  f"{target.namespace}")
        return {"decision": "inconclusive" if step_end else "continue", "reason": reason, "metrics": {}}
    return {"decision": "continue", "reason": "before the first planned look", "metrics": {}}


def dependencies_answer(query: Mapping[str, str], cache) -> tuple[int, dict]:
    """GET /v1/dependencies: may this agent start its canary? From the cluster cache (`PolicyWatch`
    with a NetworkIndex): pass when every agent it depends on is Healthy and not mid-rollout."""
    namespace, rollout = query.get("namespace", "").strip(), query.get("rollout", "").strip()
    if not namespace or not rollout:
        return 400, {"error": f"{'namespace' if not namespace else 'rollout'}: required"}
    if cache is None:
        return 503, {"error": "the judge has no cluster cache: start it in-cluster or with --kubeconfig"}
    if not cache.ready:
        return 503, {"error": "the cluster cache is not loaded yet"}
    agent = cache.network.agent(namespace, rollout)
    if agent is None:
        return 404, {"error": f"no agent Rollout {namespace}/{rollout} in the cache"}
    body = readiness(agent.depends_on, cache.network.agents_in(namespace)).to_dict()
    return 200, {**body, "namespace": namespace, "rollout": rollout, "dependsOn": list(agent.depends_on)}


def make_app(prometheus_address: str, allowed: tuple[str, ...] = (), query_timeout_s: float = 10.0,
             cache=None, warm: Sequence[Plan] = (DEFAULT_PLAN,)) -> web.Application:
    """`prometheus=` in a request (a policy's prometheus-address arg) may only name the default
    address or one of `allowed`: the judge must not fetch URLs chosen by whoever can reach it.
    `cache`: the cluster watch that answers /v1/dependencies (None: that endpoint answers 503).
    The boundaries of the `warm` plans are computed at startup, before the server listens."""
    metrics = JudgeMetrics()
    permitted = {a.rstrip("/") for a in (prometheus_address, *allowed)}

    async def verdict(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            target, plan, step_end, at = parse_request(request.query, time.time())
        except BadParameter as e:
            metrics.request("bad_request")
            return web.json_response({"error": str(e)}, status=400)
        address = (request.query.get("prometheus") or prometheus_address).rstrip("/")
        if address not in permitted:
            metrics.request("bad_request")
            return web.json_response({"error": f"prometheus: {address!r} is not an allowed address "
                                               "(agentroll-webhook judge --allow-prometheus)"}, status=400)
        prom = Prometheus(request.app[SESSION], address, query_timeout_s)
        try:
            result, facts = await judge(prom, target, plan, step_end, at)
        except PrometheusError as e:
            metrics.request("prometheus_error")
            log.warning("%s/%s canary %s: %s", target.namespace, target.rollout, target.canary_hash, e)
            return web.json_response({"error": str(e)}, status=502)
        body = result.to_dict() if result else no_data_answer(step_end, facts, target)
        body |= {"rollout": target.rollout, "namespace": target.namespace, "canaryHash": target.canary_hash,
                 "stableHash": target.stable_hash, "plan": str(plan), "at": at, "stepEnd": step_end, **facts}
        metrics.verdict(target, body)
        log.info("%s/%s canary %s: %s in %.0fms (%s)", target.namespace, target.rollout, target.canary_hash,
                 body["decision"], (time.perf_counter() - started) * 1000, body.get("reason", ""))
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def dependencies(request: web.Request) -> web.Response:
        status, body = dependencies_answer(request.query, cache)
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    async def session_ctx(app: web.Application):
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    async def warm_up(_: web.Application) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        for plan in warm:
            await loop.run_in_executor(None, designs, plan)
        if warm:
            log.info("boundaries of %d plan(s) computed in %.1fs", len(warm), time.perf_counter() - started)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.on_startup.append(warm_up)
    app.router.add_get("/v1/verdict", verdict)
    app.router.add_get("/v1/dependencies", dependencies)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def serve(app: web.Application, host: str, port: int, ssl_context=None) -> None:
    """Serve until SIGTERM/SIGINT."""
    import signal

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    log.info("judge serving %s://%s:%d/v1/verdict", "https" if ssl_context else "http", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
