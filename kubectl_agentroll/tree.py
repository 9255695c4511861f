"""The revisions -> ReplicaSets -> pods (and AnalysisRuns) tree of one Rollout, as the Argo plugin's
`get rollout` shows it, with each revision's composite version. Pure: objects and a clock in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from kubectl_agentroll import composite as cv
from kubectl_agentroll import status as st


@dataclass(eq=False, repr=False)
class PodNode:
    """A pod under its ReplicaSet in the revision tree."""

    name: str
    status: str  # Running | Pending | Succeeded | Failed | Terminating | a container's waiting reason
    ready: str  # "ready/containers"
    restarts: int
    age: str


@dataclass(eq=False, repr=False)
class RunNode:
    """An AnalysisRun under its revision in the revision tree."""

    name: str
    phase: str
    age: str
    successful: int
    failed: int


@dataclass(eq=False, repr=False)
class RevisionNode:
    """One revision of the tree: its ReplicaSet, pods and AnalysisRuns."""

    revision: int
    replicaset: str
    roles: list[str]  # stable, canary, preview
    status: str  # Healthy | Progressing | ScaledDown | Degraded
    replicas: str  # "ready/desired"
    composite: str
    age: str
    pods: list[PodNode] = field(default_factory=list)
    runs: list[RunNode] = field(default_factory=list)


def age(timestamp: object, now: datetime) -> str:
    """kubectl's short age: 42s, 7m, 3h, 5d; '-' when unknown."""
    if not isinstance(timestamp, str) or not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def pod_node(pod: Mapping, now: datetime) -> PodNode:
    status = st.status_of(pod)
    statuses = [st._map(c) for c in st._list(status.get("containerStatuses"))]
    containers = st._list(st._map(pod.get("spec")).get("containers"))
    phase = str(status.get("phase") or "Pending")
    for c in statuses:
        waiting = st._map(st._map(c.get("state")).get("waiting"))
        if waiting.get("reason"):
            phase = str(waiting["reason"])
            break
    if st.meta(pod).get("deletionTimestamp"):
        phase = "Terminating"
    ready = sum(1 for c in statuses if c.get("ready"))
    return PodNode(
        name=str(st.meta(pod).get("name", "")), status=phase,
        ready=f"{ready}/{len(containers) or len(statuses)}",
        restarts=sum(st._int(c.get("restartCount")) for c in statuses),
        age=age(st.meta(pod).get("creationTimestamp"), now),
    )


def _rs_status(rs: Mapping, aborted_canary: bool) -> str:
    desired = st._int(st.spec_of(rs).get("replicas"))
    ready = st._int(st.status_of(rs).get("readyReplicas"))
    if aborted_canary:
        return "Degraded"
    if desired == 0:
        return "ScaledDown"
    return "Healthy" if ready >= desired else "Progressing"


def revision_tree(rollout: Mapping, replicasets: Iterable[Mapping], pods: Iterable[Mapping],
                  runs: Iterable[Mapping], now: datetime) -> list[RevisionNode]:
    """One node per ReplicaSet of the Rollout, newest revision first, with its pods and runs."""
    status = st.status_of(rollout)
    uid = st.meta(rollout).get("uid")
    new_role = "preview" if st.strategy_name(rollout) == "BlueGreen" else "canary"
    pods_by_hash: dict[str, list[Mapping]] = {}
    for pod in pods:
        pods_by_hash.setdefault(str(st.labels_of(pod).get(st.POD_TEMPLATE_HASH)), []).append(pod)
    runs_by_hash: dict[str, list[Mapping]] = {}
    for run in runs:
        if not uid or st.owned_by(run, uid):
            runs_by_hash.setdefault(str(st.labels_of(run).get(st.POD_TEMPLATE_HASH)), []).append(run)
    nodes = []
    for rs in st.replicasets_of(rollout, replicasets):
        hash_ = st.pod_template_hash(rs) or ""
        roles = []
        if hash_ == status.get("stableRS"):
            roles.append("stable")
        if hash_ == status.get("currentPodHash") and st.in_flight(rollout):
            roles.append(new_role)
        analyses = sorted(runs_by_hash.get(hash_, []), key=_created)
        nodes.append(RevisionNode(
            revision=st.revision_of(rs), replicaset=str(st.meta(rs).get("name", "")), roles=roles,
            status=_rs_status(rs, bool(status.get("abort")) and new_role in roles),
            replicas=f"{st._int(st.status_of(rs).get('readyReplicas'))}/{st._int(st.spec_of(rs).get('replicas'))}",
            composite=str(st.labels_of(rs).get(cv.COMPOSITE_VERSION) or cv.UNSET),
            age=age(st.meta(rs).get("creationTimestamp"), now),
            pods=[pod_node(p, now) for p in sorted(pods_by_hash.get(hash_, []),
                                                   key=lambda p: str(st.meta(p).get("name")))],
            runs=[_run_node(r, now) for r in analyses],
        ))
    return nodes


def _created(obj: Mapping) -> tuple[str, str]:
    return str(st.meta(obj).get("creationTimestamp", "")), str(st.meta(obj).get("name"))


def _run_node(run: Mapping, now: datetime) -> RunNode:
    analysis = st.analysis_of(run)
    return RunNode(name=analysis.name, phase=analysis.phase,
                   age=age(st.meta(run).get("creationTimestamp"), now),
                   successful=sum(m.successful for m in analysis.metrics),
                   failed=sum(m.failed + m.error for m in analysis.metrics))


def to_dicts(nodes: list[RevisionNode]) -> list[dict]:
    return [asdict(n) for n in nodes]
