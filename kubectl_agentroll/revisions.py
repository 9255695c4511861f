"""history and undo: every revision the Rollout still has, as an agent version with its analysis
outcome, and the one JSON patch that puts an earlier one back. Pure: nothing here talks to the cluster.

A revision is one of the Rollout's ReplicaSets (the controller keeps `revisionHistoryLimit` of them,
default 10) with the AnalysisRuns of its pod template hash that the controller still keeps
(`analysisRunHistoryLimit`, default 5 successful and 5 unsuccessful).

Undo restores the ReplicaSet's pod template (as `kubectl argo rollouts undo` does) AND the Rollout
annotations the webhook reads to compute the composite version (prompt-version, model-version,
tools, container): the webhook then recomputes the same composite version, the pod template hash
matches the old ReplicaSet, and the controller rolls back to it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from kubectl_agentroll import composite as cv
from kubectl_agentroll import status as st
from kubectl_agentroll.actions import Refused

PASSED, FAILED, INCONCLUSIVE, RUNNING, NONE = "Successful", "Failed", "Inconclusive", "Running", "none"
# The Rollout annotations the webhook reads; it copies each, under the same key, to the pod template.
UNDO_ANNOTATIONS = (cv.PROMPT, cv.MODEL, cv.TOOLS, cv.TOOL_REQUIREMENTS)


@dataclass
class Revision:
    revision: int
    replicaset: str
    pod_template_hash: str
    created: str | None
    role: str  # stable | canary | old
    version: st.Version
    analysis: str  # Successful | Failed | Inconclusive | Running | none
    decisive: list[str] = field(default_factory=list)  # "run metric measured v against cond"
    runs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _outcome(runs: list[st.Analysis]) -> tuple[str, list[str]]:
    """One verdict over a revision's AnalysisRuns, and the measured values that decided it."""
    phases = [r.phase for r in runs]
    if not runs:
        return NONE, []
    if any(p in ("Failed", "Error") for p in phases):
        verdict = FAILED
    elif "Inconclusive" in phases:
        verdict = INCONCLUSIVE
    elif all(p == "Successful" for p in phases):
        verdict = PASSED
    else:
        verdict = RUNNING
    decisive = []
    wanted = {FAILED: ("Failed", "Error"), INCONCLUSIVE: ("Inconclusive",)}.get(verdict, ("Successful",))
    for run in runs:
        for m in run.metrics:
            if m.phase in wanted:
                condition = (m.failure_condition if m.phase in ("Failed", "Error") else None) \
                    or m.success_condition or m.failure_condition or "no condition"
                decisive.append(f"{run.name}: {m.name} {m.phase} measured "
                                f"{', '.join(m.values) or 'no value'} against {condition!r}")
    return verdict, decisive


def history(rollout: Mapping, replicasets: Iterable[Mapping], runs: Iterable[Mapping]) -> list[Revision]:
    """The Rollout's revisions, newest first."""
    status = st.status_of(rollout)
    uid = st.meta(rollout).get("uid")
    by_hash: dict[str, list[st.Analysis]] = {}
    for run in sorted(runs, key=lambda r: (str(st.meta(r).get("creationTimestamp", "")),
                                           str(st.meta(r).get("name")))):
        if uid and not st.owned_by(run, uid):
            continue
        by_hash.setdefault(str(st.labels_of(run).get(st.POD_TEMPLATE_HASH)), []).append(st.analysis_of(run))
    revisions = []
    for rs in st.replicasets_of(rollout, replicasets):
        hash_ = st.pod_template_hash(rs) or ""
        role = "stable" if hash_ == status.get("stableRS") else \
            "canary" if hash_ == status.get("currentPodHash") else "old"
        analyses = by_hash.get(hash_, [])
        verdict, decisive = _outcome(analyses)
        revisions.append(Revision(
            revision=st.revision_of(rs), replicaset=str(st.meta(rs).get("name", "")),
            pod_template_hash=hash_, created=st.meta(rs).get("creationTimestamp"), role=role,
            version=st.version_of(rs, role, rollout), analysis=verdict, decisive=decisive,
            runs=[a.name for a in analyses],
        ))
    return revisions


def undo_target(rollout: Mapping, revisions: list[Revision], to_revision: int | None = None,
                to_version: str | None = None, force: bool = False) -> Revision:
    """The revision to go back to: the one asked for, else the newest earlier one whose analysis passed."""
    name = st.meta(rollout).get("name")
    current = st.status_of(rollout).get("currentPodHash")
    have = ", ".join(f"{r.revision} ({r.version.composite}, analysis {r.analysis})"
                     for r in revisions) or "none"
    if to_revision is not None or to_version is not None:
        matches = [r for r in revisions if (to_revision is None or r.revision == to_revision)
                   and (to_version is None or r.version.composite == to_version)]
        if not matches:
            asked = f"revision {to_revision}" if to_revision is not None \
                else f"composite version {to_version}"
            raise Refused(f"rollout {name!r} has no {asked} (have: {have})")
        target = matches[0]
    else:
        passed = [r for r in revisions if r.pod_template_hash != current and r.analysis == PASSED]
        if not passed:
            raise Refused(f"rollout {name!r}: no earlier revision whose analysis passed (have: {have}); "
                          "name one with --to-revision")
        target = passed[0]
    if target.pod_template_hash == current:
        raise Refused(f"rollout {name!r} is already at revision {target.revision} "
                      f"(composite version {target.version.composite})")
    if target.analysis in (FAILED, INCONCLUSIVE) and not force:
        why = "; ".join(target.decisive) or target.analysis
        raise Refused(f"rollout {name!r}: revision {target.revision}'s analysis was {target.analysis} "
                      f"({why}); not rolling back to it (--force to roll back anyway)")
    return target


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def plan_undo(rollout: Mapping, replicaset: Mapping) -> list[dict]:
    """One JSON patch: the ReplicaSet's pod template and the layer annotations that produced it,
    applied only to the Rollout as read (metadata.resourceVersion)."""
    template = copy.deepcopy(dict(st._map(st.spec_of(replicaset).get("template"))))
    labels = dict(st._map(st._map(template.get("metadata")).get("labels")))
    labels.pop(st.POD_TEMPLATE_HASH, None)
    template.setdefault("metadata", {})["labels"] = labels
    raw = st.raw_layers(replicaset)
    annotations = st.annotations_of(rollout)
    ops: list[dict] = [{"op": "replace", "path": "/metadata/resourceVersion",
                        "value": st.meta(rollout).get("resourceVersion")}] \
        if st.meta(rollout).get("resourceVersion") else []
    if "annotations" not in st.meta(rollout) or not isinstance(st.meta(rollout).get("annotations"), Mapping):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    ops.append({"op": "replace", "path": "/spec/template", "value": template})
    written = st._map(st._map(template.get("metadata")).get("annotations"))
    for key in UNDO_ANNOTATIONS:
        where = f"/metadata/annotations/{_pointer(key)}"
        value = written.get(key)
        if value is not None and value != cv.UNSET:
            ops.append({"op": "add", "path": where, "value": str(value)})
        elif key in annotations:
            ops.append({"op": "remove", "path": where})
    containers = st._list(st._map(template.get("spec")).get("containers"))
    agent = next((st._map(c) for c in containers if st._map(c).get("image") == raw["image"]), None)
    if agent is not None and agent.get("name") and (
            cv.CONTAINER in annotations or agent is not st._map(containers[0])):
        ops.append({"op": "add", "path": f"/metadata/annotations/{_pointer(cv.CONTAINER)}",
                    "value": agent["name"]})
    return ops
