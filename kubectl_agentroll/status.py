"""What `status` and `version-diff` show: Rollout, ReplicaSets and AnalysisRuns in, a display model out.

Pure functions over plain dicts as the API returns them; nothing here talks to the cluster.
Phase, step and weights are computed the way the Argo Rollouts kubectl plugin computes them, so both
tools agree when used side by side: phase/message follow its `GetRolloutPhase`, step and weights its
`NewRolloutInfo`. On top of that, the composite agent version (prompt, model, tools, image) of the
stable and the canary ReplicaSet, layer by layer, and the measured values of the agent-quality
analysis of the current revision.

The display models here (and in `tree`) are built once per command and never compared
or printed as objects: `@dataclass(eq=False, repr=False)` spares their generated `__eq__` and
`__repr__`, ~0.3 ms of start-up each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from kubectl_agentroll import composite as cv

if TYPE_CHECKING:  # imported where used: the list view never needs it
    from kubectl_agentroll import verdictview

POD_TEMPLATE_HASH = "rollouts-pod-template-hash"
ROLLOUT_TYPE = "rollout-type"
STEP_INDEX = "step-index"
REVISION = "rollout.argoproj.io/revision"

ABORTED_REASON = "RolloutAborted"
FAILED_ANALYSIS = ("Failed", "Error", "Inconclusive")
LAST_VALUES = 3
NO_REPLICASET = "-"  # the list view's version when there is no such ReplicaSet (yet)
MULTI_LAYER_WARNING = "a regression could not be attributed to one layer"


def _map(value: object) -> Mapping:
    if type(value) is dict:  # what JSON gives: decided without the slower ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list:
    if type(value) is list:
        return value[:]
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _verdict(value: str):
    """The judge's verdict or the dependency gate's answer in a measurement value, else None."""
    from kubectl_agentroll import verdictview

    return verdictview.parse(value) or verdictview.parse_dependencies(value)


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def meta(obj: Mapping) -> Mapping:
    return _map(obj.get("metadata"))


def labels_of(obj: Mapping) -> Mapping:
    return _map(meta(obj).get("labels"))


def annotations_of(obj: Mapping) -> Mapping:
    return _map(meta(obj).get("annotations"))


def spec_of(obj: Mapping) -> Mapping:
    return _map(obj.get("spec"))


def status_of(obj: Mapping) -> Mapping:
    return _map(obj.get("status"))


def is_opted_in(rollout: Mapping) -> bool:
    """An agent Rollout: labelled with a composite version (by the webhook or `inject`) or asking to be."""
    return cv.COMPOSITE_VERSION in labels_of(rollout) or cv.INJECT in annotations_of(rollout)


# --- Argo's phase, step and weights --------------------------------------------------------------


def _generation_observed(rollout: Mapping) -> bool:
    """status.observedGeneration (a string) equals metadata.generation; non-numeric counts as observed."""
    observed = status_of(rollout).get("observedGeneration")
    try:
        observed = int(str(observed))
    except (TypeError, ValueError):
        return True
    generation = _int(meta(rollout).get("generation"))
    return observed >= generation


def is_unpausing(rollout: Mapping) -> bool:
    status = status_of(rollout)
    return bool(status.get("controllerPause")) and not _list(status.get("pauseConditions"))


def _calculate_phase(rollout: Mapping) -> tuple[str, str]:
    """The client-side phase for controllers that do not write status.phase (Argo v0.10 and older)."""
    spec, status = spec_of(rollout), status_of(rollout)
    for cond in _list(status.get("conditions")):
        cond = _map(cond)
        if cond.get("type") == "InvalidSpec":
            return "Degraded", f"InvalidSpec: {cond.get('message', '')}"
        if cond.get("reason") in (ABORTED_REASON, "ProgressDeadlineExceeded"):
            return "Degraded", f"{cond.get('reason')}: {cond.get('message', '')}"
    if spec.get("paused"):
        return "Paused", "manually paused"
    for cond in _list(status.get("pauseConditions")):
        return "Paused", str(_map(cond).get("reason", ""))
    restart_at = spec.get("restartAt")
    if restart_at and restart_at != status.get("restartedAt"):
        return "Progressing", "rollout is restarting"
    desired = _int(spec.get("replicas"), 1) if spec.get("replicas") is not None else 1
    updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
    if updated < desired:
        return "Progressing", "more replicas need to be updated"
    if available < updated:
        return "Progressing", "updated replicas are still becoming available"
    strategy = _map(spec.get("strategy"))
    fully_promoted = status.get("stableRS") == status.get("currentPodHash")
    if "blueGreen" in strategy:
        active = _map(status.get("blueGreen")).get("activeSelector")
        if not active or active != status.get("currentPodHash"):
            return "Progressing", "active service cutover pending"
        if not status.get("stableRS") or not fully_promoted:
            post = _map(strategy.get("blueGreen")).get("postPromotionAnalysis")
            run = _map(_map(status.get("blueGreen")).get("postPromotionAnalysisRunStatus"))
            if post and run.get("status") not in ("Successful", "Failed", "Error", "Inconclusive"):
                return "Progressing", "waiting for analysis to complete"
            return "Progressing", "waiting for post-promotion verification to complete"
    elif "canary" in strategy:
        canary = _map(strategy.get("canary"))
        # basic canary only: with traffic routing, scaleDownDelay keeps old replicas on purpose
        if not canary.get("trafficRouting") and _int(status.get("replicas")) > updated:
            return "Progressing", "old replicas are pending termination"
        if not status.get("stableRS") or not fully_promoted:
            return "Progressing", "waiting for all steps to complete"
    return "Healthy", ""


def rollout_phase(rollout: Mapping) -> tuple[str, str]:
    """(phase, message) exactly as the Argo plugin reports them."""
    if not _generation_observed(rollout):
        return "Progressing", "waiting for rollout spec update to be observed"
    if is_unpausing(rollout):
        return "Progressing", "waiting for rollout to unpause"
    status = status_of(rollout)
    if status.get("phase"):
        return str(status["phase"]), str(status.get("message") or "")
    return _calculate_phase(rollout)


def canary_steps(rollout: Mapping) -> list:
    return _list(_map(_map(spec_of(rollout).get("strategy")).get("canary")).get("steps"))


def strategy_name(rollout: Mapping) -> str:
    strategy = _map(spec_of(rollout).get("strategy"))
    if "canary" in strategy:
        return "Canary"
    if "blueGreen" in strategy:
        return "BlueGreen"
    return ""


def current_step(rollout: Mapping) -> tuple[Mapping | None, int | None]:
    """(current canary step or None when past the last one, its index); (None, None) without steps."""
    if strategy_name(rollout) != "Canary":
        return None, None
    steps = canary_steps(rollout)
    if not steps:
        return None, None
    index = _int(status_of(rollout).get("currentStepIndex"), 0)
    if index >= len(steps):
        return None, index
    return _map(steps[index]), index


def max_weight(rollout: Mapping) -> int:
    routing = _map(_map(_map(spec_of(rollout).get("strategy")).get("canary")).get("trafficRouting"))
    return _int(routing.get("maxTrafficWeight"), 100) if routing.get("maxTrafficWeight") else 100


def set_weight(rollout: Mapping) -> int:
    """The desired canary weight at the current step (0 once aborted)."""
    if status_of(rollout).get("abort"):
        return 0
    step, index = current_step(rollout)
    if step is None:
        return max_weight(rollout)
    steps = canary_steps(rollout)
    for i in range(index, -1, -1):
        weight = _map(steps[i]).get("setWeight")
        if weight is not None:
            return _int(weight)
    return 0


def actual_weight(rollout: Mapping, canary_rs: Mapping | None) -> int:
    """The weight the canary really gets: by available pods, or as the traffic router reports it."""
    status = status_of(rollout)
    step, _ = current_step(rollout)
    if step is None:
        return max_weight(rollout)
    available = _int(status.get("availableReplicas"))
    if available <= 0:
        return 0
    canary = _map(_map(_map(spec_of(rollout).get("strategy")).get("canary")))
    if not canary.get("trafficRouting"):
        if canary_rs is None:
            return 0
        canary_available = _int(status_of(canary_rs).get("availableReplicas"))
        return canary_available * max_weight(rollout) // available
    weights = _map(_map(status.get("canary")).get("weights"))
    if weights:
        return _int(_map(weights.get("canary")).get("weight"))
    return set_weight(rollout)


# --- ReplicaSets and their composite versions ----------------------------------------------------


def owned_by(obj: Mapping, uid: str | None) -> bool:
    refs = [_map(r) for r in _list(meta(obj).get("ownerReferences"))]
    if not uid:
        return False
    return any(r.get("uid") == uid for r in refs)


def pod_template_hash(rs: Mapping) -> str | None:
    return labels_of(rs).get(POD_TEMPLATE_HASH)


def revision_of(obj: Mapping) -> int:
    return _int(annotations_of(obj).get(REVISION))


def replicasets_of(rollout: Mapping, replicasets: Iterable[Mapping]) -> list[Mapping]:
    """The Rollout's ReplicaSets, newest revision first (owned by UID; by name prefix without a UID)."""
    uid = meta(rollout).get("uid")
    name = meta(rollout).get("name")
    namespace = meta(rollout).get("namespace")
    mine = []
    for rs in replicasets:
        rs_meta = meta(rs)
        if namespace and rs_meta.get("namespace") not in (None, namespace):
            continue
        if owned_by(rs, uid) or (
            not uid and any(_map(r).get("kind") == "Rollout" and _map(r).get("name") == name
                            for r in _list(rs_meta.get("ownerReferences")))
        ):
            mine.append(rs)
    return sorted(mine, key=lambda rs: (-revision_of(rs), str(meta(rs).get("name"))))


def find_by_hash(replicasets: Iterable[Mapping], hash_: str | None) -> Mapping | None:
    if not hash_:
        return None
    return next((rs for rs in replicasets if pod_template_hash(rs) == hash_), None)


def _template_annotations(rs: Mapping) -> Mapping:
    return _map(meta(_map(spec_of(rs).get("template"))).get("annotations"))


def raw_layers(rs: Mapping) -> dict[str, str]:
    """The layers as declared, from the pod template annotations the webhook wrote; 'unset' if absent."""
    annotations = _template_annotations(rs)
    try:
        version = cv.composite_from_annotations(annotations)
        return {layer: version.raw(layer) or cv.UNSET for layer in cv.LAYERS}
    except cv.AnnotationError:
        keys = {**cv.LAYER_LABELS, "tools": cv.TOOLS}
        return {layer: str(annotations.get(keys[layer]) or cv.UNSET) for layer in cv.LAYERS}


def agent_image(rs: Mapping, rollout: Mapping | None = None) -> str | None:
    """The agent container's image in the ReplicaSet's pod template (agentroll.dev/container, else first)."""
    shaped = {
        "metadata": {"annotations": dict(annotations_of(rollout or {}))},
        "spec": {"template": dict(_map(spec_of(rs).get("template")))},
    }
    try:
        container = cv.agent_container(shaped)
    except cv.AnnotationError:
        containers = _list(_map(_map(spec_of(rs).get("template")).get("spec")).get("containers"))
        container = _map(containers[0]) if containers else None
    image = _map(container).get("image") if container else None
    return str(image) if image else None


@dataclass(eq=False, repr=False)
class Version:
    """One ReplicaSet of the Rollout as a composite agent version."""

    role: str  # stable | canary | preview | old
    replicaset: str
    pod_template_hash: str
    revision: int
    composite: str
    layers: dict[str, str]  # layer -> label value ('unset' when the label is missing)
    raw: dict[str, str]  # layer -> raw value from the pod template annotations ('unset' if absent)
    image: str | None
    replicas: int
    available: int


def version_of(rs: Mapping, role: str, rollout: Mapping | None = None) -> Version:
    labels = labels_of(rs)
    status = status_of(rs)
    return Version(
        role=role,
        replicaset=str(meta(rs).get("name", "")),
        pod_template_hash=str(labels.get(POD_TEMPLATE_HASH, "")),
        revision=revision_of(rs),
        composite=str(labels.get(cv.COMPOSITE_VERSION) or cv.UNSET),
        layers={layer: str(labels.get(cv.LAYER_LABELS[layer]) or cv.UNSET) for layer in cv.LAYERS},
        raw=raw_layers(rs),
        image=agent_image(rs, rollout),
        replicas=_int(status.get("replicas")),
        available=_int(status.get("availableReplicas")),
    )


def _changed(old: Version | None, new: Version | None, layer: str) -> bool:
    if old is None or new is None:
        return False
    def value(v: Version) -> str:
        return v.raw[layer] if v.raw[layer] != cv.UNSET else v.layers[layer]
    return value(old) != value(new) or old.layers[layer] != new.layers[layer]


@dataclass(eq=False, repr=False)
class LayerRow:
    """One layer of the stable and canary versions, side by side."""

    layer: str
    stable: str | None
    canary: str | None
    changed: bool


def layer_rows(stable: Version | None, canary: Version | None) -> list[LayerRow]:
    rows = [
        LayerRow(
            layer=layer,
            stable=stable.layers[layer] if stable else None,
            canary=canary.layers[layer] if canary else None,
            changed=_changed(stable, canary, layer),
        )
        for layer in cv.LAYERS
    ]
    rows.append(LayerRow(
        layer="composite",
        stable=stable.composite if stable else None,
        canary=canary.composite if canary else None,
        changed=bool(stable and canary and stable.composite != canary.composite),
    ))
    return rows


# --- AnalysisRuns --------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Metric:
    """One metric of an AnalysisRun: its phase, last values and conditions."""

    name: str
    phase: str
    values: list[str]  # the last measured values, oldest first
    success_condition: str | None
    failure_condition: str | None
    count: int
    successful: int
    failed: int
    inconclusive: int
    error: int
    message: str | None = None
    verdict: verdictview.VerdictView | None = None  # the judge's last answer, when this metric asks it
    dependencies: verdictview.DependencyView | None = None  # the dependency gate's last answer


@dataclass(eq=False, repr=False)
class Analysis:
    """One AnalysisRun of the current revision, as `status` shows it."""

    name: str
    kind: str  # Step | Background | PrePromotion | PostPromotion
    step_index: int | None
    phase: str
    message: str | None
    revision: int
    metrics: list[Metric] = field(default_factory=list)


def analysis_of(run: Mapping) -> Analysis:
    from kubectl_agentroll import verdictview  # the one-Rollout view only

    labels = labels_of(run)
    status = status_of(run)
    results = {
        _map(r).get("name"): _map(r) for r in _list(status.get("metricResults"))
    }
    metrics = []
    spec_metrics = [_map(m) for m in _list(spec_of(run).get("metrics"))]
    names = [m.get("name") for m in spec_metrics]
    names += [n for n in results if n not in names]
    by_name = {m.get("name"): m for m in spec_metrics}
    for name in names:
        spec_metric, result = by_name.get(name, {}), results.get(name, {})
        measurements = [_map(m) for m in _list(result.get("measurements"))]
        values = [str(m["value"]) for m in measurements if m.get("value") not in (None, "")]
        verdicts = [_verdict(v) for v in values]
        last = verdicts[-1] if verdicts else None
        values = [v.decision if v else raw for v, raw in zip(verdicts, values, strict=True)]
        metrics.append(Metric(
            name=str(name),
            phase=str(result.get("phase") or "Pending"),
            values=values[-LAST_VALUES:],
            success_condition=spec_metric.get("successCondition"),
            failure_condition=spec_metric.get("failureCondition"),
            count=_int(result.get("count")),
            successful=_int(result.get("successful")),
            failed=_int(result.get("failed")),
            inconclusive=_int(result.get("inconclusive")),
            error=_int(result.get("error")),
            message=result.get("message") or None,
            verdict=last if isinstance(last, verdictview.VerdictView) else None,
            dependencies=last if isinstance(last, verdictview.DependencyView) else None,
        ))
    step = labels.get(STEP_INDEX)
    return Analysis(
        name=str(meta(run).get("name", "")),
        kind=str(labels.get(ROLLOUT_TYPE, "")),
        step_index=_int(step) if step is not None else None,
        phase=str(status.get("phase") or "Pending"),
        message=status.get("message") or None,
        revision=revision_of(run),
        metrics=metrics,
    )


def current_analysis_runs(rollout: Mapping, runs: Iterable[Mapping]) -> list[Mapping]:
    """The Rollout's AnalysisRuns for its current pod template hash, oldest first."""
    uid = meta(rollout).get("uid")
    current = status_of(rollout).get("currentPodHash")
    mine = [
        r for r in runs
        if (owned_by(r, uid) or not uid) and current and labels_of(r).get(POD_TEMPLATE_HASH) == current
    ]
    return sorted(mine, key=lambda r: (str(meta(r).get("creationTimestamp", "")), str(meta(r).get("name"))))


# --- the display models --------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Replicas:
    """The Rollout's replica counts, as the Argo plugin shows them."""

    desired: int
    current: int
    updated: int
    ready: int
    available: int


@dataclass(eq=False, repr=False)
class RolloutStatus:
    """The display model of `status NAME` (also its -o json/yaml)."""

    name: str
    namespace: str
    phase: str
    message: str
    aborted: bool
    strategy: str
    step: str  # "i/n", or "" without canary steps
    set_weight: int | None
    actual_weight: int | None
    stable: Version | None
    canary: Version | None  # the new version while one is in flight (blue-green: the preview)
    layers: list[LayerRow]
    replicas: Replicas
    analysis_runs: list[Analysis]
    current_step_analysis: dict | None  # status.canary.currentStepAnalysisRunStatus
    opted_in: bool
    notes: list[str] = field(default_factory=list)
    requirements: list = field(default_factory=list)  # network.RequirementRow, when it declares some

    @property
    def waiting_on(self) -> str | None:
        """Why the dependency gate holds the canary, while it does."""
        for run in self.analysis_runs:
            for metric in run.metrics if run.phase in ("Running", "Pending") else ():
                if metric.dependencies is not None and not metric.dependencies.ready:
                    return metric.dependencies.reason
        return None

    @property
    def phase_display(self) -> str:
        return f"{self.phase} (aborted)" if self.aborted else self.phase

    def to_dict(self) -> dict:
        return asdict(self)


def in_flight(rollout: Mapping) -> bool:
    status = status_of(rollout)
    current = status.get("currentPodHash")
    return bool(current) and current != status.get("stableRS")


def rollout_status(
    rollout: Mapping, replicasets: Iterable[Mapping] = (), analysis_runs: Iterable[Mapping] = ()
) -> RolloutStatus:
    spec, status = spec_of(rollout), status_of(rollout)
    phase, message = rollout_phase(rollout)
    strategy = strategy_name(rollout)
    mine = replicasets_of(rollout, replicasets)
    stable_rs = find_by_hash(mine, status.get("stableRS"))
    canary_rs = find_by_hash(mine, status.get("currentPodHash")) if in_flight(rollout) else None
    new_role = "preview" if strategy == "BlueGreen" else "canary"
    stable = version_of(stable_rs, "stable", rollout) if stable_rs else None
    canary = version_of(canary_rs, new_role, rollout) if canary_rs else None

    steps = canary_steps(rollout)
    index = status.get("currentStepIndex")
    step = _step(strategy, index, steps)
    notes = []
    aborted = bool(status.get("abort"))
    if aborted:
        notes.append("aborted: traffic and replicas went back to the stable version; "
                     "`retry` to try the canary again")
    if spec.get("workloadRef") and not spec.get("template"):
        notes.append("spec.workloadRef: layer labels come from the referenced workload's pod template")
    if stable_rs is None and status.get("stableRS"):
        notes.append(f"stable ReplicaSet (hash {status.get('stableRS')}) not found")
    if canary is not None:
        changed = [row.layer for row in layer_rows(stable, canary)[:-1] if row.changed]
        if len(changed) > 1:
            notes.append(f"{', '.join(changed)} changed at once: {MULTI_LAYER_WARNING}")

    replicas_spec = spec.get("replicas")
    return RolloutStatus(
        name=str(meta(rollout).get("name", "")),
        namespace=str(meta(rollout).get("namespace", "")),
        phase=phase,
        message=message,
        aborted=aborted,
        strategy=strategy,
        step=step,
        set_weight=set_weight(rollout) if strategy == "Canary" else None,
        actual_weight=actual_weight(rollout, canary_rs) if strategy == "Canary" else None,
        stable=stable,
        canary=canary,
        layers=layer_rows(stable, canary),
        replicas=Replicas(
            desired=_int(replicas_spec, 1) if replicas_spec is not None else 1,
            current=_int(status.get("replicas")),
            updated=_int(status.get("updatedReplicas")),
            ready=_int(status.get("readyReplicas")),
            available=_int(status.get("availableReplicas")),
        ),
        analysis_runs=[analysis_of(r) for r in current_analysis_runs(rollout, analysis_runs)],
        current_step_analysis=dict(_map(status.get("canary")).get("currentStepAnalysisRunStatus") or {})
        or None,
        opted_in=is_opted_in(rollout),
        notes=notes,
    )


@dataclass(eq=False, repr=False)
class RolloutRow:
    """One line of the list view."""

    namespace: str
    name: str
    phase: str
    aborted: bool
    step: str
    weight: str
    stable: str
    canary: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def settled(rollout: Mapping) -> bool:
    """Running one revision, the one its spec describes: the controller has seen this generation
    and its stable pods are the current template's. The stable ReplicaSet then carries the
    template's labels (the controller copies them, adding only the pod template hash), so the list
    view reads the stable version off the Rollout and need not read the ReplicaSet."""
    status = status_of(rollout)
    stable = status.get("stableRS")
    observed = status.get("observedGeneration")
    generation = meta(rollout).get("generation")
    return (bool(stable) and stable == status.get("currentPodHash")
            and observed is not None and generation is not None and str(observed) == str(generation)
            and isinstance(spec_of(rollout).get("template"), Mapping))


def replicasets_to_read(rollouts: Iterable[Mapping], opted_in_only: bool = True) -> set[str]:
    """The pod template hashes of the ReplicaSets the list view needs: the stable and canary
    ReplicaSets of the listed Rollouts that are not `settled`. Only hashes that can be label values
    (a status can hold anything; nothing else can match a ReplicaSet's label)."""
    hashes: set[str] = set()
    for rollout in rollouts:
        if (opted_in_only and not is_opted_in(rollout)) or settled(rollout):
            continue
        status = status_of(rollout)
        hashes.update(h for h in (status.get("stableRS"), status.get("currentPodHash"))
                      if isinstance(h, str) and h and cv.is_valid_label_value(h))
    return hashes


def rollout_rows(
    rollouts: Iterable[Mapping], replicasets: Iterable[Mapping], opted_in_only: bool = True
) -> list[RolloutRow]:
    """The list view: one row per (opted-in) Rollout; ReplicaSets are indexed once by owner. A
    `settled` Rollout's stable version is its template's when its ReplicaSet is not among them."""
    by_owner: dict[str, dict[str, Mapping]] = {}
    for rs in replicasets:
        hash_ = pod_template_hash(rs)
        if not hash_:
            continue
        for ref in _list(meta(rs).get("ownerReferences")):
            uid = _map(ref).get("uid")
            if uid:
                by_owner.setdefault(uid, {})[hash_] = rs
    rows = []
    for rollout in rollouts:
        if opted_in_only and not is_opted_in(rollout):
            continue
        status = status_of(rollout)
        owned = by_owner.get(meta(rollout).get("uid"), {})
        phase, _ = rollout_phase(rollout)
        strategy = strategy_name(rollout)
        steps = canary_steps(rollout)
        index = status.get("currentStepIndex")
        stable_rs = owned.get(status.get("stableRS"))
        canary_rs = owned.get(status.get("currentPodHash")) if in_flight(rollout) else None
        weight = ""
        if strategy == "Canary":
            weight = str(set_weight(rollout))
            actual = actual_weight(rollout, canary_rs)
            if str(actual) != weight:
                weight += f" (actual {actual})"
        rows.append(RolloutRow(
            namespace=str(meta(rollout).get("namespace", "")),
            name=str(meta(rollout).get("name", "")),
            phase=phase,
            aborted=bool(status.get("abort")),
            step=_step(strategy, index, steps),
            weight=weight,
            stable=_composite_label(stable_rs) if stable_rs
            else _composite_label(_map(spec_of(rollout).get("template"))) if settled(rollout)
            else NO_REPLICASET,
            canary=None if not in_flight(rollout)
            else _composite_label(canary_rs) if canary_rs else NO_REPLICASET,
        ))
    return sorted(rows, key=lambda r: (r.namespace, r.name))


def _step(strategy: str, index: object, steps: list) -> str:
    """"i/n" as the Argo plugin shows it: only for a canary with steps and a current step index."""
    return f"{_int(index)}/{len(steps)}" if strategy == "Canary" and index is not None and steps else ""


def _composite_label(obj: Mapping) -> str:
    """The composite version label of a ReplicaSet or a pod template."""
    return str(labels_of(obj).get(cv.COMPOSITE_VERSION) or cv.UNSET)


# --- version-diff --------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class DiffRow:
    """One layer of `version-diff`."""

    layer: str
    old: str
    new: str
    old_raw: str
    new_raw: str
    changed: bool


@dataclass(eq=False, repr=False)
class VersionDiff:
    """The display model of `version-diff`."""

    rollout: str
    namespace: str
    old: Version
    new: Version
    rows: list[DiffRow]
    changed: list[str]
    warning: str | None

    def to_dict(self) -> dict:
        return asdict(self)


class DiffError(ValueError):
    """The revisions asked for do not exist; the message says which ones do."""


def version_diff(
    rollout: Mapping,
    replicasets: Iterable[Mapping],
    revision: int | None = None,
    to: int | None = None,
) -> VersionDiff:
    """Two revisions side by side: by default stable vs canary, or the last two when nothing is in flight."""
    mine = replicasets_of(rollout, replicasets)
    status = status_of(rollout)
    by_revision = {}
    for rs in mine:
        by_revision.setdefault(revision_of(rs), rs)
    have = ", ".join(str(r) for r in sorted(by_revision)) or "none"
    name = str(meta(rollout).get("name", ""))

    def pick(rev: int) -> Mapping:
        if rev not in by_revision:
            raise DiffError(f"rollout {name!r} has no revision {rev} (have: {have})")
        return by_revision[rev]

    stable_rs = find_by_hash(mine, status.get("stableRS"))
    current_rs = find_by_hash(mine, status.get("currentPodHash"))
    if revision is not None or to is not None:
        new_rs = pick(to) if to is not None else (current_rs or (mine[0] if mine else None))
        if revision is not None:
            old_rs = pick(revision)
        else:
            older = [rs for rs in mine if revision_of(rs) < revision_of(new_rs or {})]
            old_rs = older[0] if older else None
    elif in_flight(rollout) and stable_rs is not None and current_rs is not None:
        old_rs, new_rs = stable_rs, current_rs
    else:
        new_rs = mine[0] if mine else None
        old_rs = mine[1] if len(mine) > 1 else None
    if old_rs is None or new_rs is None:
        raise DiffError(f"rollout {name!r} has fewer than two revisions to compare (have: {have})")

    def role(rs: Mapping) -> str:
        if rs is stable_rs:
            return "stable"
        if rs is current_rs:
            return "preview" if strategy_name(rollout) == "BlueGreen" else "canary"
        return "old"

    old, new = version_of(old_rs, role(old_rs), rollout), version_of(new_rs, role(new_rs), rollout)
    rows = [
        DiffRow(layer, old.layers[layer], new.layers[layer], old.raw[layer], new.raw[layer],
                _changed(old, new, layer))
        for layer in cv.LAYERS
    ]
    changed = [row.layer for row in rows if row.changed]
    warning = None
    if len(changed) > 1:
        warning = f"{len(changed)} layers changed ({', '.join(changed)}): {MULTI_LAYER_WARNING}"
    return VersionDiff(name, str(meta(rollout).get("namespace", "")), old, new, rows, changed, warning)
