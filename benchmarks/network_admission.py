#!/usr/bin/env python3
"""Admission cost of the agent-network rules with 1,000 agents and 200 tool servers in the cache.

Prints figures; asserts nothing. The cache (`NetworkIndex`) is filled as the watch's list calls
would fill it: 10 namespaces, each with 100 agent Rollouts and 20 tool-server Deployments (20
tools). Every agent requires 3 of its namespace's tools with a range, and depends on the next two
agents of its namespace (a chain 100 deep: the cycle check walks all of it). Cases, each as the
engine alone (median / p99 µs over 3,000 calls) and through the webhook app over loopback HTTP/1.1
keep-alive at concurrency 8 (no TLS, like benchmarks/policy_scale.py):

  - agent CREATE, no network view     the engine as before this feature (baseline)
  - agent CREATE, requirements + deps  requirement lookups and the cycle check run
  - agent UPDATE, nothing changed      what the Argo controller sends: the rules are skipped
  - tool-server UPDATE, new version    the reverse check over the agents requiring that tool

    python benchmarks/network_admission.py [--requests 4000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from policy_scale import http_load, percentile  # noqa: E402

from kubectl_agentroll import composite as cv  # noqa: E402
from kubectl_agentroll.mutate import mutate  # noqa: E402
from kubectl_agentroll.netadmit import NetworkView  # noqa: E402
from kubectl_agentroll.network import NetworkIndex  # noqa: E402
from kubectl_agentroll.policy import BUILTIN  # noqa: E402
from tests.unit.rollouts import rollout  # noqa: E402

NAMESPACES, AGENTS_PER_NS, TOOLS_PER_NS = 10, 100, 20


def agent(ns: int, i: int) -> dict:
    obj = rollout()
    obj["metadata"].update(name=f"agent-{i:03d}", namespace=f"team-{ns}")
    tools = [(i + k) % TOOLS_PER_NS for k in range(3)]
    obj["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "; ".join(f"tool-{t}>=1.0,<2" for t in tools)
    deps = [f"agent-{j:03d}" for j in (i + 1, i + 2) if j < AGENTS_PER_NS]
    if deps:
        obj["metadata"]["annotations"][cv.DEPENDS_ON] = ",".join(deps)
    obj["status"] = {"phase": "Healthy", "stableRS": "a", "currentPodHash": "a"}
    return obj


def tool_server(ns: int, t: int, version: str = "1.4.0") -> dict:
    name = f"tool-{t}"
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": f"team-{ns}", "annotations": {cv.TOOL_SERVER: name},
                         "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "s", "image": f"r/{name}:{version}"}]}}}}


def admission(obj: dict, operation: str = "CREATE", old: dict | None = None, kind=("argoproj.io", "Rollout")):
    request = {"uid": str(uuid.uuid4()), "kind": {"group": kind[0], "version": "v1", "kind": kind[1]},
               "namespace": obj["metadata"]["namespace"], "operation": operation, "object": obj}
    if old is not None:
        request["oldObject"] = old
    return request


class Source:
    """A policy source as the webhook's watch presents it: one policy, the network cache."""

    def __init__(self, network: NetworkIndex | None) -> None:
        self.ready, self.network = True, network

    def for_namespace(self, namespace: str | None):
        return BUILTIN


def engine_us(request: dict, view: NetworkView | None, runs: int = 3000) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        decision = mutate(request, BUILTIN, view)
        times.append(time.perf_counter() - started)
    assert decision.allowed, decision.message
    return statistics.median(times) * 1e6, percentile(times, 0.99) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    agents = [agent(ns, i) for ns in range(NAMESPACES) for i in range(AGENTS_PER_NS)]
    servers = [tool_server(ns, t) for ns in range(NAMESPACES) for t in range(TOOLS_PER_NS)]
    started = time.perf_counter()
    index = NetworkIndex.of(agents, servers)
    build_ms = (time.perf_counter() - started) * 1e3
    view = NetworkView(index, lambda ns: BUILTIN)

    newcomer = agent(3, 0)
    newcomer["metadata"]["name"] = "agent-new"  # depends on agent-001, -002: a chain of 99
    stored = agent(3, 50)
    old_server, new_server = tool_server(3, 7), tool_server(3, 7, "1.5.0")
    cases = [
        ("agent CREATE, no network view", admission(newcomer), None),
        ("agent CREATE, requirements + deps", admission(newcomer), view),
        ("agent UPDATE, nothing changed", admission(copy.deepcopy(stored), "UPDATE", stored), view),
        ("tool-server UPDATE, new version",
         admission(new_server, "UPDATE", old_server, ("apps", "Deployment")), view),
    ]
    requirers = len(index.requirers("tool-7"))
    print(f"cache: {len(index.agents)} agents, {len(index.tool_servers)} tool servers in {NAMESPACES} "
          f"namespaces, built in {build_ms:.0f} ms; tool-7 is required by {requirers} agents")
    print(f"{'case':36} {'engine p50/p99 us':>18} {'HTTP req/s':>11} {'HTTP p50/p99 ms':>16}")
    for label, request, case_view in cases:
        p50, p99 = engine_us(request, case_view)
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "request": request}).encode()
        source = Source(index if case_view is not None else None)
        rps, h50, h99 = asyncio.run(http_load(source, [body], args.requests, args.concurrency))
        print(f"{label:36} {p50:>8.0f} / {p99:<7.0f} {rps:>11.0f} {h50 * 1e3:>7.2f} / {h99 * 1e3:<6.2f}")


if __name__ == "__main__":
    main()
