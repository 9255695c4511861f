"""Self-check that the cluster stays healthy past its node heartbeat deadline.

The failure this guards against: with no node Lease, the node lifecycle controller saw no heartbeat
for a grace period, marked the kwok node NotReady and every pod's Ready condition False, and kwok
never set them back, so ReplicaSets reported 0 ready and canaries stalled. The check holds a
Deployment through at least two grace periods and samples the node, its Lease and the pods.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from . import kwok
from .cluster import kubectl_json, paths
from .config import ClusterError, log
from .health import kubectl_run

NAMESPACE = "agentroll-soak"
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: soak, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: soak}}}}
  template:
    metadata: {{labels: {{app: soak}}}}
    spec:
      containers: [{{name: app, image: registry.local/soak:1}}]
"""


def grace_seconds() -> float:
    return float(kwok.NODE_MONITOR_GRACE.rstrip("s"))


@dataclass
class Sample:
    at: float
    node_ready: bool
    lease_age: float | None          # seconds since the node Lease was renewed; None: no Lease
    pods_ready: int
    pods: int


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)

    def problems(self, replicas: int, grace: float) -> list[str]:
        """What went wrong, one line each; empty when the cluster held."""
        out = []
        for s in self.samples:
            t = f"t+{s.at:.0f}s"
            if not s.node_ready:
                out.append(f"{t}: node NotReady")
            if s.lease_age is None:
                out.append(f"{t}: no node Lease in kube-node-lease")
            elif s.lease_age > grace:
                out.append(f"{t}: node Lease not renewed for {s.lease_age:.0f}s (grace {grace:.0f}s)")
            if s.pods_ready < replicas:
                out.append(f"{t}: {s.pods_ready}/{replicas} pods Ready")
        return out


def _iso_age(stamp: str, now: float) -> float:
    """Seconds from a Kubernetes timestamp (RFC 3339, UTC, maybe with microseconds) to now."""
    return now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _ready(obj: dict) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def sample(started: float) -> Sample:
    p = paths()
    now = time.time()
    node = kubectl_json(p, "get", "node", "kwok-node-0")
    ready = _ready(node)
    leases = kubectl_json(p, "get", "lease", "-n", "kube-node-lease")["items"]
    lease = next((x for x in leases if x["metadata"]["name"] == "kwok-node-0"), None)
    renew = (lease or {}).get("spec", {}).get("renewTime")
    pods = kubectl_json(p, "get", "pods", "-n", NAMESPACE, "-l", "app=soak")["items"]
    pods_ready = sum(_ready(pod) for pod in pods)
    return Sample(now - started, ready, _iso_age(renew, now) if renew else None, pods_ready, len(pods))


def run(seconds: float | None = None, replicas: int = 3, interval: float = 2.0) -> int:
    grace = grace_seconds()
    hold = seconds if seconds is not None else 2 * grace + 10
    p = paths()
    kubectl = p.bin / "kubectl"
    kubectl_run(p, kubectl, ["apply", "-f", "-"],
                input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n---\n"
                      + DEPLOYMENT.format(ns=NAMESPACE, replicas=replicas))
    started = time.time()
    try:
        deadline = time.monotonic() + 60
        while sample(started).pods_ready < replicas:
            if time.monotonic() > deadline:
                raise ClusterError(f"soak: {replicas} pods not Ready after 60s in namespace {NAMESPACE}")
            time.sleep(1)
        log(f"soak: {replicas} pods Ready; holding {hold:.0f}s (node-monitor grace {grace:.0f}s, "
            f"Lease {kwok.LEASE_SECONDS}s)")
        report = Report()
        end = time.monotonic() + hold
        while time.monotonic() < end:
            report.samples.append(sample(started))
            time.sleep(interval)
    finally:
        kubectl_run(p, kubectl, ["delete", "namespace", NAMESPACE, "--wait=false"])
    problems = report.problems(replicas, grace)
    ages = [s.lease_age for s in report.samples if s.lease_age is not None]
    log(f"soak: {len(report.samples)} samples over {hold:.0f}s, node Lease age max "
        f"{max(ages):.0f}s" if ages else f"soak: {len(report.samples)} samples, no node Lease seen")
    for line in problems[:10]:
        log(f"soak: {line}")
    if problems:
        raise ClusterError(f"soak failed: {len(problems)} problem(s), first: {problems[0]}")
    log("soak: the node and every pod stayed Ready")
    return 0
