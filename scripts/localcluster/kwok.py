"""kwok: fake nodes that heartbeat like a kubelet and make pods Ready without running them.

A kubelet's heartbeat is its node Lease, renewed every quarter of the lease duration; the node
status is only refreshed every few minutes. kwok does the same only when told the lease duration:
with `--config` (our stages) and no KwokConfiguration document in it, its default is 0 and it
creates no Lease at all, so the node lifecycle controller saw no heartbeat for minutes, marked the
node NotReady and every pod's Ready condition False, which kwok never set back. Hence the explicit
`--node-lease-duration-seconds` and the controller-manager's default-sized grace period.
"""
from __future__ import annotations

from pathlib import Path

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
LEASE_SECONDS = 40
NODE_MONITOR_GRACE = "40s"  # kube-controller-manager: a node whose Lease is this stale is NotReady


def config(stages_dir: Path) -> str:
    """The kwok config file: the stages copied from the kwok module at build time."""
    docs = [f.read_text().strip() + "\n" for f in sorted(stages_dir.glob("*.yaml"))]
    return "---\n".join(docs)


def nodes_yaml(n: int) -> str:
    docs = []
    for i in range(n):
        name = f"kwok-node-{i}"
        docs.append(f"""apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    {KWOK_ANNOTATION}: fake
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: {name}
    node-role.kubernetes.io/agent: ""
status:
  allocatable:
    cpu: "64"
    memory: 256Gi
    pods: "250"
  capacity:
    cpu: "64"
    memory: 256Gi
    pods: "250"
""")
    return "---\n".join(docs)
