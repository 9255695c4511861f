#!/usr/bin/env python3
"""Admission cost with 1 policy and with 500 policies / 5,000 namespaces in the snapshot.

Prints figures; asserts nothing. For each size it loads a `PolicyWatch` (the cluster policy source)
with synthetic AgentRollPolicies and Namespaces, exactly as the list calls would, then measures:

  - for_namespace:       the policy lookup admission does (median / p99, nanoseconds)
  - for_namespace+mutate: lookup plus the mutation engine on a realistic agent Rollout (µs)
  - HTTP:                the webhook app (webhook.server.make_app) over loopback HTTP/1.1
                          keep-alive at concurrency 8: requests/s, p50 and p99 (no TLS, so the
                          figure isolates what the snapshot size could change)
  - snapshot build, and the median of 20 policy / 200 namespace changes (the watch threads'
    cost, incremental: only namespaces the changed object can affect are recomputed)
  - HTTP again while a thread applies 100 namespace and 1 policy change per second (the watch
    threads share the GIL with the event loop; this shows what that costs admission)

    python benchmarks/policy_scale.py [--requests 4000] [--concurrency 8]

The 500 policies each select one team label (team-0..team-499) with a priority; 50 of them use a
matchExpressions selector instead of matchLabels (so they are checked for every namespace). The
5,000 namespaces carry a team label (10 per team) and an environment label.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kubectl_agentroll.mutate import mutate  # noqa: E402
from tests.unit.rollouts import rollout  # noqa: E402
from webhook.policywatch import PolicyWatch  # noqa: E402
from webhook.server import make_app  # noqa: E402


def policy_objects(count: int) -> list[dict]:
    objects = []
    for i in range(count):
        if count > 1 and i % 10 == 9:
            selector = {"matchExpressions": [
                {"key": "team", "operator": "In", "values": [f"team-{i}"]},
                {"key": "env", "operator": "NotIn", "values": ["sandbox"]}]}
        else:
            selector = {"matchLabels": {"team": f"team-{i}"}}
        objects.append({
            "apiVersion": "agentroll.dev/v1alpha1", "kind": "AgentRollPolicy",
            "metadata": {"name": f"policy-{i:03d}", "resourceVersion": "1"},
            "spec": {"priority": i % 7, "namespaceSelector": selector,
                     "analysis": {"templates": [{"name": "agent-quality"}]},
                     "allowedTemplates": ["agent-quality", f"team-{i}-quality"]},
        })
    return objects


def namespace_objects(count: int, teams: int) -> list[dict]:
    return [{"metadata": {"name": f"ns-{i:05d}", "labels": {
        "kubernetes.io/metadata.name": f"ns-{i:05d}", "team": f"team-{i % teams}",
        "env": ("prod", "staging", "sandbox")[i % 3]}}} for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def review(namespace: str) -> bytes:
    obj = rollout()
    obj["metadata"]["namespace"] = namespace
    obj["metadata"]["annotations"].pop("agentroll.dev/inject")  # opted in by namespace selection
    req = {"uid": str(uuid.uuid4()), "kind": {"group": "argoproj.io", "version": "v1alpha1",
                                              "kind": "Rollout"},
           "resource": {"group": "argoproj.io", "version": "v1alpha1", "resource": "rollouts"},
           "namespace": namespace, "operation": "CREATE", "object": obj}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": req}).encode()


async def http_load(source, bodies: list[bytes], requests: int,
                    concurrency: int) -> tuple[float, float, float]:
    """The webhook app over a policy source, loopback HTTP/1.1 keep-alive at `concurrency`; each
    body must be admitted. aiohttp's own handler: no request log (webhook.connection writes it, and
    it is the same at every snapshot size)."""
    runner = web.AppRunner(make_app(source), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/mutate"
    latencies: list[float] = []
    remaining = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in remaining:
            started = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)]) as resp:
                body = await resp.json()
            latencies.append(time.perf_counter() - started)
            if not body["response"]["allowed"]:
                raise SystemExit(f"unexpected denial: {body}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(50):  # warm up
            async with session.post(url, data=bodies[0]) as resp:
                await resp.read()
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    await runner.cleanup()
    return requests / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99)


def measure(n_policies: int, n_namespaces: int, args) -> dict:
    watch = PolicyWatch(events=False)
    started = time.perf_counter()
    watch.apply_policy_list(policy_objects(n_policies))
    watch.apply_namespace_list(namespace_objects(n_namespaces, max(n_policies, 1)))
    build = time.perf_counter() - started
    assert watch.ready
    names = [f"ns-{i:05d}" for i in range(n_namespaces)]
    rng = random.Random(1)
    sample = [rng.choice(names) for _ in range(20000)]

    lookups = []
    for ns in sample:
        t = time.perf_counter_ns()
        watch.for_namespace(ns)
        lookups.append(time.perf_counter_ns() - t)

    request = json.loads(review(names[0]))["request"]
    engine = []
    for ns in sample[:3000]:
        request["namespace"] = ns
        t = time.perf_counter()
        decision = mutate(request, watch.for_namespace(ns))
        engine.append(time.perf_counter() - t)
    assert decision.patch, "expected the namespace-selected Rollout to be patched"

    policy_changes, namespace_changes = [], []
    all_policies = policy_objects(n_policies)
    all_namespaces = namespace_objects(n_namespaces, max(n_policies, 1))
    for round_ in range(20):
        changed = all_policies[rng.randrange(n_policies)]
        changed["spec"]["allowedTemplates"].append(f"extra-{round_}")
        started = time.perf_counter()
        watch.apply_policy_event("MODIFIED", changed)
        policy_changes.append(time.perf_counter() - started)
    for round_ in range(200):
        ns_obj = all_namespaces[rng.randrange(n_namespaces)]
        ns_obj["metadata"]["labels"]["round"] = str(round_)
        started = time.perf_counter()
        watch.apply_namespace_event("MODIFIED", ns_obj)
        namespace_changes.append(time.perf_counter() - started)
    policy_change = statistics.median(policy_changes)
    namespace_change = statistics.median(namespace_changes)

    bodies = [review(ns) for ns in names[:200]]
    rps, p50, p99 = asyncio.run(http_load(watch, bodies, args.requests, args.concurrency))
    churn = ""
    if args.churn and n_policies > 1:
        # The watch runs in threads: measure admission while one applies changes at a high rate
        # (100 namespace updates and 1 policy update per second, far above a real cluster's).
        stop = threading.Event()

        def churner() -> None:
            i = 0
            while not stop.is_set():
                ns_obj = all_namespaces[i % n_namespaces]
                ns_obj["metadata"]["labels"]["round"] = f"c{i}"
                watch.apply_namespace_event("MODIFIED", ns_obj)
                if i % 100 == 0:
                    changed = all_policies[i % n_policies]
                    changed["spec"]["allowedTemplates"].append(f"churn-{i}")
                    watch.apply_policy_event("MODIFIED", changed)
                i += 1
                stop.wait(0.01)

        thread = threading.Thread(target=churner, daemon=True)
        thread.start()
        try:
            crps, cp50, cp99 = asyncio.run(http_load(watch, bodies, args.requests,
                                                     args.concurrency))
        finally:
            stop.set()
            thread.join()
        churn = f"{crps:>10.0f} {cp50 * 1e3:>7.2f} / {cp99 * 1e3:<6.2f}"
    return {
        "churn": churn,
        "size": f"{n_policies} policies / {n_namespaces} namespaces",
        "lookup_p50_ns": statistics.median(lookups), "lookup_p99_ns": percentile(lookups, 0.99),
        "engine_p50_us": statistics.median(engine) * 1e6,
        "engine_p99_us": percentile(engine, 0.99) * 1e6,
        "rps": rps, "http_p50_ms": p50 * 1e3, "http_p99_ms": p99 * 1e3,
        "build_ms": build * 1e3, "policy_change_ms": policy_change * 1e3,
        "namespace_change_ms": namespace_change * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-churn", dest="churn", action="store_false",
                        help="skip the run with the watch applying changes meanwhile")
    args = parser.parse_args()
    rows = [measure(1, 5000, args), measure(500, 5000, args)]
    print(f"{'snapshot':36} {'lookup p50/p99 ns':>18} {'lookup+mutate p50/p99 us':>25} "
          f"{'HTTP req/s':>10} {'HTTP p50/p99 ms':>16}")
    for r in rows:
        print(f"{r['size']:36} {r['lookup_p50_ns']:>8.0f} / {r['lookup_p99_ns']:<7.0f} "
              f"{r['engine_p50_us']:>12.0f} / {r['engine_p99_us']:<10.0f} {r['rps']:>10.0f} "
              f"{r['http_p50_ms']:>7.2f} / {r['http_p99_ms']:<6.2f}")
    for r in rows:
        if r["churn"]:
            print(f"{r['size'] + ' + churn':36} {'':>18} {'':>25} {r['churn']}")
    print()
    print(f"{'snapshot':36} {'build ms':>9} {'policy change ms':>17} {'namespace change ms':>20}")
    for r in rows:
        print(f"{r['size']:36} {r['build_ms']:>9.1f} {r['policy_change_ms']:>17.2f} "
              f"{r['namespace_change_ms']:>20.3f}")


if __name__ == "__main__":
    main()
