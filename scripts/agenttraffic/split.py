"""Who gets the traffic: a Rollout and its pods -> each Ready pod's share of tasks.

The split follows the weight Argo has set, as a traffic router (SMI, Istio, NGINX...) would apply it:
`status.canary.weights` when the controller reports them, otherwise the last `setWeight` before the
current step. Within a version, Ready pods share its traffic evenly. Pods of neither the stable nor
the canary ReplicaSet (an old one scaling down) get nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

HASH_LABEL = "rollouts-pod-template-hash"


@dataclass(frozen=True)
class Split:
    namespace: str
    rollout: str
    stable_hash: str | None
    canary_hash: str | None
    canary_weight: float                        # percent of tasks the canary should get
    shares: dict[str, float] = field(default_factory=dict)   # pod name -> fraction of all tasks


def canary_weight(rollout: dict) -> float:
    """The percentage of traffic Argo has given the canary right now."""
    status = rollout.get("status") or {}
    stable, current = status.get("stableRS"), status.get("currentPodHash")
    if not current or current == stable or status.get("abort"):
        return 0.0
    weights = (status.get("canary") or {}).get("weights") or {}
    if "canary" in weights and "weight" in weights["canary"]:
        return float(weights["canary"]["weight"])
    steps = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary", {}).get("steps") or []
    index = status.get("currentStepIndex", 0) or 0
    if index >= len(steps):
        return 100.0
    weight = 0.0
    for step in steps[:index]:
        if "setWeight" in step:
            weight = float(step["setWeight"])
    return weight


def _ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def split(rollout: dict, pods: list[dict]) -> Split:
    meta = rollout.get("metadata") or {}
    status = rollout.get("status") or {}
    stable, canary = status.get("stableRS"), status.get("currentPodHash")
    weight = canary_weight(rollout)
    by_hash: dict[str, list[str]] = {}
    for pod in pods:
        if _ready(pod):
            h = (pod["metadata"].get("labels") or {}).get(HASH_LABEL)
            by_hash.setdefault(h, []).append(pod["metadata"]["name"])
    canary_pods = by_hash.get(canary, []) if canary != stable else []
    stable_pods = by_hash.get(stable, [])
    canary_fraction = weight / 100 if canary_pods else 0.0
    if not stable_pods:
        canary_fraction = 1.0 if canary_pods else 0.0
    shares = {}
    for names, fraction in ((stable_pods, 1 - canary_fraction), (canary_pods, canary_fraction)):
        for name in names:
            shares[name] = fraction / len(names)
    return Split(meta.get("namespace", ""), meta.get("name", ""), stable,
                 canary if canary != stable else None, weight, {k: v for k, v in shares.items() if v > 0})
