"""promote, abort and retry: which patches to send, decided from the Rollout as read.

The patches, their order and their subresource are those of the Argo Rollouts kubectl plugin
(`cmd/promote`, `cmd/abort`, `cmd/retry`), so either tool can be used on the same Rollout:

- every patch is a JSON merge patch (application/merge-patch+json);
- the status part goes to the `status` subresource first; only when that answers 404 (a controller
  that does not use the status subresource) is the "unified" patch (spec and status together) sent
  to the Rollout itself; the spec part, if any, always goes to the Rollout itself, after the status;
- promote: unpause (`spec.paused: false`) when paused; clear `status.pauseConditions`; when no pause
  condition is set on a canary, move `status.currentStepIndex` one step on (never past the end);
  when the current step's analysis was Inconclusive and the controller paused on it, clear the pause
  conditions AND `controllerPause` and move one step on; `--full` sets `status.promoteFull: true`
  (when the desired version is not yet stable) and unpauses;
- abort: `status.abort: true`; retry: `status.abort: false`.

On top of the Argo plugin, agent-aware refusals (promote over a failed or inconclusive analysis
needs --force) and what abort rolls back to. Pure: nothing here talks to the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubectl_agentroll import status as st

STATUS = "status"


class Refused(Exception):
    """The action would be wrong or do nothing; the message says why (one line)."""


@dataclass(frozen=True)
class Patch:
    """The merge patches of one action, in the order they are sent."""

    status: dict | None = None  # to the status subresource
    spec: dict | None = None  # to the Rollout itself, after the status patch
    unified: dict | None = None  # replaces `spec` when the status subresource answers 404
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return self.status is None and self.spec is None


def _next_index(rollout: Mapping) -> int | None:
    """The step after the current one (capped at the number of steps); None without canary steps."""
    _, index = st.current_step(rollout)
    if index is None:
        return None
    return min(index + 1, len(st.canary_steps(rollout)))


def _is_inconclusive(rollout: Mapping) -> bool:
    canary = st._map(st.status_of(rollout).get("canary"))
    run = st._map(canary.get("currentStepAnalysisRunStatus"))
    return st.strategy_name(rollout) == "Canary" and run.get("status") == "Inconclusive"


def argo_promote_patch(rollout: Mapping, full: bool = False) -> Patch:
    """The patches `kubectl argo rollouts promote [--full]` sends for this Rollout, as read."""
    spec, status = st.spec_of(rollout), st.status_of(rollout)
    paused = bool(spec.get("paused"))
    if full:
        return Patch(
            spec={"spec": {"paused": False}} if paused else None,
            status={"status": {"promoteFull": True}}
            if status.get("currentPodHash") != status.get("stableRS") else None,
            unified={"spec": {"paused": False}, "status": {"promoteFull": True}},
        )
    spec_patch = {"spec": {"paused": False}} if paused else None
    unified = {"spec": {"paused": False}, "status": {"pauseConditions": None}}
    pause_conditions = st._list(status.get("pauseConditions"))
    status_patch = None
    if _is_inconclusive(rollout) and pause_conditions and status.get("controllerPause"):
        index = _next_index(rollout)
        if index is not None:
            status_patch = {"status": {"pauseConditions": None, "controllerPause": False,
                                       "currentStepIndex": index}}
    elif pause_conditions:
        status_patch = {"status": {"pauseConditions": None}}
    elif st.strategy_name(rollout) == "Canary":
        index = _next_index(rollout)
        if index is not None:
            status_patch = {"status": {"pauseConditions": None, "currentStepIndex": index}}
            unified = {"spec": {"paused": False},
                       "status": {"pauseConditions": None, "currentStepIndex": index}}
    return Patch(status=status_patch, spec=spec_patch, unified=unified)


def _is_paused(rollout: Mapping) -> bool:
    status = st.status_of(rollout)
    return bool(st.spec_of(rollout).get("paused") or st._list(status.get("pauseConditions"))
                or status.get("controllerPause"))


def analysis_problem(rollout: Mapping, runs: Iterable[Mapping] = ()) -> str | None:
    """Why the current step's analysis forbids a promotion (failed, errored or inconclusive), or None.

    `runs` may hold the AnalysisRun named by status.canary.currentStepAnalysisRunStatus; its
    measured values then make the reason concrete.
    """
    canary = st._map(st.status_of(rollout).get("canary"))
    current = st._map(canary.get("currentStepAnalysisRunStatus"))
    phase = current.get("status")
    if phase not in st.FAILED_ANALYSIS:
        return None
    name = current.get("name") or "?"
    reason = f"step analysis {name} is {phase}"
    if current.get("message"):
        reason += f" ({current['message']})"
    run = next((r for r in runs if st.meta(r).get("name") == name), None)
    if run is not None:
        bad = [m for m in st.analysis_of(run).metrics if m.phase in st.FAILED_ANALYSIS]
        for metric in bad:
            measured = ", ".join(metric.values) or "no value"
            condition = metric.success_condition or metric.failure_condition or "no condition"
            reason += f"; {metric.name} measured {measured} against {condition!r}"
    return reason


def plan_promote(rollout: Mapping, full: bool = False, force: bool = False,
                 runs: Iterable[Mapping] = ()) -> Patch:
    """The Argo promote patches, unless promoting is pointless or the agent analysis says no."""
    name = st.meta(rollout).get("name")
    status = st.status_of(rollout)
    if not st.in_flight(rollout) and not _is_paused(rollout):
        raise Refused(f"rollout {name!r} is not paused and has no update in progress: nothing to promote")
    if not force:
        if status.get("abort"):
            raise Refused(f"rollout {name!r} is aborted: `retry` it first (or --force)")
        problem = analysis_problem(rollout, runs)
        if problem:
            raise Refused(f"rollout {name!r}: {problem}; not promoting (--force to promote anyway)")
    patch = argo_promote_patch(rollout, full)
    if patch.empty:
        raise Refused(f"rollout {name!r} is not paused: nothing to promote")
    return patch


def plan_abort(rollout: Mapping, replicasets: Iterable[Mapping] = ()) -> tuple[Patch, list[str]]:
    """The abort patch and what a person should know: the version rolled back to, side effects stay."""
    name = st.meta(rollout).get("name")
    status = st.status_of(rollout)
    if not st.in_flight(rollout):
        raise Refused(f"rollout {name!r} has no update in progress: nothing to abort")
    stable_rs = st.find_by_hash(st.replicasets_of(rollout, replicasets), status.get("stableRS"))
    lines = []
    if stable_rs is not None:
        version = st.version_of(stable_rs, "stable", rollout)
        shown = {layer: version.raw[layer] if version.raw[layer] != "unset" else version.layers[layer]
                 for layer in ("prompt", "model", "tools", "image")}
        layers = ", ".join(f"{layer} {value}" for layer, value in shown.items())
        lines.append(f"rolling back to stable composite version {version.composite} "
                     f"(revision {version.revision}: {layers})")
    else:
        lines.append(f"rolling back to the stable ReplicaSet (hash {status.get('stableRS') or 'unknown'})")
    lines.append("note: side effects the canary agent already caused (emails sent, tickets filed, "
                 "API calls made) are not undone by an abort")
    lines.append("note: spec.template still holds the new version; `retry` tries it again, "
                 "reverting the manifest abandons it")
    return Patch(status={"status": {"abort": True}}, unified={"status": {"abort": True}}), lines


def plan_retry(rollout: Mapping) -> Patch:
    name = st.meta(rollout).get("name")
    if not st.status_of(rollout).get("abort"):
        raise Refused(f"rollout {name!r} is not aborted: nothing to retry")
    phase, _ = st.rollout_phase(rollout)
    if phase != "Degraded":
        # status.abort is what `abort` wrote; until the controller has acted on it, clearing it
        # again would cancel an abort the controller never saw, and the canary would stay put.
        raise Refused(f"rollout {name!r} is still being aborted (phase {phase}): retry once the "
                      "controller has rolled it back (Degraded)")
    return Patch(status={"status": {"abort": False}}, unified={"status": {"abort": False}})


def send(patch: Patch, patch_fn, resource_version: str | None) -> object:
    """Send `patch` as the Argo plugin does: status subresource first, falling back on 404 only.

    `patch_fn(body, subresource)` sends one merge patch (subresource "status" or None) and raises
    kube.KubeError. The first patch carries the metadata.resourceVersion of the Rollout as read, so
    the API server refuses it with 409 Conflict when the Rollout changed after the decision was made;
    `with_conflict_retry` then reads and decides again. The spec patch that may follow a status patch
    (unpausing) is not guarded: by then the controller may well have reacted to the status patch,
    and deciding again from that state would move a second step on.
    A 403 on the status subresource is NOT a reason to fall back: with the status subresource
    enabled the API server drops status fields sent to the main resource, so the fallback would
    report success and change nothing.
    """
    from kubectl_agentroll.kube import KubeError

    def guarded(body: dict) -> dict:
        if not resource_version:
            return body
        return {**body, "metadata": {**(body.get("metadata") or {}), "resourceVersion": resource_version}}

    result = None
    spec = patch.spec
    if patch.status is not None:
        try:
            result = patch_fn(guarded(patch.status), STATUS)
            resource_version = None
        except KubeError as err:
            if err.status != 404:
                raise
            spec = patch.unified
    if spec is not None:
        result = patch_fn(guarded(spec), None)
    return result


def with_conflict_retry(attempt, tries: int = 5) -> object:
    """Run `attempt()` (read, decide, patch) again on 409 Conflict, up to `tries` times."""
    from kubectl_agentroll.kube import KubeError

    for remaining in range(tries - 1, -1, -1):
        try:
            return attempt()
        except KubeError as err:
            if err.status != 409 or remaining == 0:
                raise
    return None


# --- pause, restart (the Argo plugin's patches) and set (ours) -------------------------------------


def plan_pause(rollout: Mapping) -> Patch:
    """`kubectl argo rollouts pause`: spec.paused true."""
    name = st.meta(rollout).get("name")
    if st.spec_of(rollout).get("paused"):
        raise Refused(f"rollout {name!r} is already paused")
    return Patch(spec={"spec": {"paused": True}})


def plan_restart(rollout: Mapping, now: str) -> Patch:
    """`kubectl argo rollouts restart`: spec.restartAt = now (RFC 3339); the controller replaces the
    pods of the stable and canary ReplicaSets, oldest first, respecting maxUnavailable."""
    return Patch(spec={"spec": {"restartAt": now}})


@dataclass(frozen=True)
class SetPlan:
    body: object  # merge patch (annotations) or JSON patch (image)
    json_patch: bool
    changes: list  # (layer, old raw, new raw)
    composite_before: str
    composite_after: str


def plan_set(rollout: Mapping, layer: str, value: str) -> SetPlan:
    """Change one layer of the agent: prompt, model or tools through the Rollout's annotations the
    webhook reads, image through the agent container. Raises Refused (one line) on bad input."""
    import copy

    from kubectl_agentroll import composite as cv

    name = st.meta(rollout).get("name")
    value = value.strip()
    if not value:
        raise Refused(f"{layer}: the new value is empty")
    try:
        before = cv.composite_of(dict(rollout))
        if layer == "tools":
            value = ",".join(str(t) for t in cv.parse_tools(value)) if value != "none" else ""
    except cv.AnnotationError as err:
        raise Refused(str(err)) from None
    after_obj = copy.deepcopy(dict(rollout))
    rv = st.meta(rollout).get("resourceVersion")
    if layer == "image":
        container = cv.agent_container(after_obj)
        if container is None:
            raise Refused(f"rollout {name!r} has no containers to set the image of")
        containers = after_obj["spec"]["template"]["spec"]["containers"]
        index = next(i for i, c in enumerate(containers) if c is container)
        container["image"] = value
        where = f"/spec/template/spec/containers/{index}"
        guard = [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv}] if rv else []
        body: object = guard + [{"op": "test", "path": f"{where}/name", "value": container.get("name")},
                                {"op": "replace", "path": f"{where}/image", "value": value}]
        json_patch = True
    else:
        key = {"prompt": cv.PROMPT, "model": cv.MODEL, "tools": cv.TOOLS}[layer]
        after_obj.setdefault("metadata", {}).setdefault("annotations", {})[key] = value
        body = {"metadata": {"annotations": {key: value}, **({"resourceVersion": rv} if rv else {})}}
        json_patch = False
    after = cv.composite_of(after_obj)
    changes = after.changed_layers(before)
    if not changes:
        raise Refused(f"rollout {name!r}: {layer} is already {value!r}: nothing to change")
    return SetPlan(body, json_patch, changes, before.composite, after.composite)
