"""The mutation engine: an AdmissionRequest and a Policy in, JSONPatch operations and warnings out.

It knows nothing of HTTP or of where the policy came from. The same function backs the webhook and
the offline `kubectl agentroll inject`. Patches are minimal (only what differs), create the maps
they need, and never replace an array the user wrote: steps are inserted one by one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from kubectl_agentroll import composite as cv
from kubectl_agentroll import network as net
from kubectl_agentroll.composite import AnnotationError, CompositeVersion, composite_of
from kubectl_agentroll.netadmit import NetworkView, check_agent, check_tool_server
from kubectl_agentroll.policy import ALWAYS_APPEND, WAIT, Policy, TemplateRef, is_dns_subdomain

MUTATED_OPERATIONS = ("CREATE", "UPDATE")

# Each inserted step is ~540 bytes of patch: without a bound, a 3 MiB Rollout of one-line
# setWeight steps would make a response of over 100 MiB. Real canaries have a handful of steps.
MAX_INSERTED_STEPS = 100


@dataclass
class Decision:
    allowed: bool = True
    patch: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    message: str | None = None
    version: CompositeVersion | None = None

    @property
    def outcome(self) -> str:
        if not self.allowed:
            return "denied"
        return "patched" if self.patch else "allowed"


def deny(message: str) -> Decision:
    return Decision(allowed=False, message=message)


@lru_cache(maxsize=1024)
def pointer(*tokens: str | int) -> str:
    """RFC 6901 JSON Pointer: `~` becomes `~0`, `/` becomes `~1`."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _copy_tree(tree: Mapping) -> dict:
    return {k: _copy_tree(v) if isinstance(v, dict) else v for k, v in tree.items()}


def ensure(root: Mapping, path: Sequence[str], desired: Mapping[str, object]) -> list[dict]:
    """Operations that make the map at `path` hold `desired`, creating missing maps on the way.

    A Mapping value in `desired` is a map to ensure in turn (so labels and annotations under one
    missing `metadata` come out as one `add`); any other value is a leaf to add or replace.
    """
    node: object = root
    for depth, key in enumerate(path):
        assert isinstance(node, dict)
        child = node.get(key)
        if child is None:
            nested: object = _copy_tree(desired)
            for outer in reversed(path[depth + 1 :]):
                nested = {outer: nested}
            return [{"op": "add", "path": pointer(*path[: depth + 1]), "value": nested}]
        if not isinstance(child, dict):
            raise AnnotationError(".".join(path[: depth + 1]), "expected a map")
        node = child
    assert isinstance(node, dict)
    ops = []
    for key, value in desired.items():
        if isinstance(value, dict):
            ops += ensure(root, (*path, key), value)
        elif key not in node:
            ops.append({"op": "add", "path": pointer(*path, key), "value": value})
        elif node[key] != value:
            ops.append({"op": "replace", "path": pointer(*path, key), "value": value})
    return ops


def analysis_args(policy: Policy) -> list[dict]:
    """Args every injected analysis passes; read from the Rollout when the AnalysisRun starts.

    `fieldRef` keeps the injected steps identical across versions (no per-version value baked into
    the spec), and works for Rollouts created with `generateName`.
    """
    args = [
        {"name": "rollout", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
        {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
        {
            "name": "composite-version",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.labels['{cv.COMPOSITE_VERSION}']"}
            },
        },
    ]
    extra = {a["name"]: a for a in policy.extra_args}
    args = [extra.pop(a["name"], a) for a in args]
    return args + list(extra.values())


def analysis_block(templates: Sequence[TemplateRef], policy: Policy, plan: str | None = None) -> dict:
    """A fresh copy each call (patches are data the caller owns), built once per policy and plan.
    With a plan, the judge's args too: the look plan and the interval of its looks."""
    key = ("analysis", tuple(templates), plan)
    text = policy.memo.get(key)
    if text is None:
        args = analysis_args(policy)
        if plan:
            given = {a["name"] for a in args}
            args += [a for a in ({"name": "plan", "value": plan},
                                 {"name": "look-interval", "value": policy.look_interval})
                     if a["name"] not in given]
        block = {"templates": [t.to_argo() for t in templates], "args": args}
        text = policy.memo[key] = orjson.dumps(block)
    return orjson.loads(text)


_DURATION = re.compile(r"^([0-9]+)[smh]?$")
OPEN_PAUSE = "10m"  # what the judge plans for a pause that waits for a human


def look_plan(steps: Sequence, look_interval: str) -> str | None:
    """The judge's look plan from a canary's steps: each setWeight strictly between 0 and 100 with
    the pause that follows it before the next setWeight, e.g. `5:5m,25:10m,50:10m`. A pause
    without a duration counts as OPEN_PAUSE, no pause as one look interval."""
    parts: list[str] = []
    weight: int | None = None
    for step in [*steps, {"setWeight": None}]:
        if not isinstance(step, dict):
            continue
        if "setWeight" in step:
            if weight is not None:
                parts.append(f"{weight}:{look_interval}")
            w = step["setWeight"]
            below = isinstance(w, int) and not isinstance(w, bool) and 0 < w < 100
            weight = w if below else None
        elif "pause" in step and weight is not None:
            pause = step["pause"] if isinstance(step["pause"], dict) else {}
            parts.append(f"{weight}:{_pause_duration(pause.get('duration')) or OPEN_PAUSE}")
            weight = None
    return ",".join(parts) or None


def _pause_duration(duration: object) -> str | None:
    """An Argo pause duration (seconds, or a number with s, m or h) above zero, else None."""
    if isinstance(duration, bool) or not isinstance(duration, (int, str)):
        return None
    text = str(duration)
    match = _DURATION.match(text)
    return text if match and int(match.group(1)) > 0 else None


def _background_op(canary: Mapping, steps: Sequence, plan: str | None, background: Sequence[TemplateRef],
                   policy: Policy) -> list[dict]:
    """Argo background analysis with the judge's looks during every pause, from the first canary
    step on, unless the Rollout has background analysis of its own."""
    if not plan or not background or canary.get("analysis") is not None:
        return []
    first = next(i for i, step in enumerate(steps) if isinstance(step, dict) and "setWeight" in step
                 and isinstance(step["setWeight"], int) and 0 < step["setWeight"] < 100)
    block = analysis_block(background, policy, plan)
    block["startingStep"] = first + 1
    return [{"op": "add", "path": pointer("spec", "strategy", "canary", "analysis"), "value": block}]


def chosen_templates(annotations: Mapping, policy: Policy) -> tuple[TemplateRef, ...]:
    """The templates to inject: the annotation's (checked against the policy), else the policy's."""
    raw = annotations.get(cv.ANALYSIS)
    if raw is None:
        return policy.templates
    if not isinstance(raw, str):
        raise AnnotationError(cv.ANALYSIS, "expected 'none' or a comma-separated list of names")
    if raw.strip().lower() == "none":
        return ()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise AnnotationError(
            cv.ANALYSIS, "expected 'none' or comma-separated ClusterAnalysisTemplate names"
        )
    for name in names:
        if not is_dns_subdomain(name):
            raise AnnotationError(cv.ANALYSIS, f"{name!r} is not a valid ClusterAnalysisTemplate name")
        if not policy.allows(name):
            allowed = ", ".join(policy.allowed_templates or ()) or "none"
            raise AnnotationError(
                cv.ANALYSIS,
                f"template {name!r} is not allowed by policy {policy.name!r} (allowed: {allowed})",
            )
    return tuple(TemplateRef(n) for n in dict.fromkeys(names))


def analysis_positions(steps: Sequence, limit: int | None = None) -> list[int]:
    """Where analysis steps go: after the pause that follows each setWeight below 100 (before the
    next setWeight; steps such as setCanaryScale or setHeaderRoute may come in between), else right
    after the setWeight. The pause is the observation window, so the gate judges what it gathered.
    Positions are indices in the original list, ascending; one pass, stopping once there are more
    than `limit` (a Rollout may hold hundreds of thousands of steps)."""
    positions: list[int] = []
    most = len(steps) if limit is None else limit
    waiting = None  # index of a setWeight below 100 whose pause has not come yet
    for j, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        if "setWeight" in step:
            if waiting is not None:
                positions.append(waiting + 1)
                if len(positions) > most:
                    return positions
            weight = step["setWeight"]
            below = isinstance(weight, int) and not isinstance(weight, bool) and weight < 100
            waiting = j if below else None
        elif "pause" in step and waiting is not None:
            positions.append(j + 1)
            waiting = None
            if len(positions) > most:
                return positions
    if waiting is not None:
        positions.append(waiting + 1)
    return positions


def _references(analysis: object, names: set[str]) -> bool:
    if not isinstance(analysis, dict):
        return False
    templates = analysis.get("templates")
    if not isinstance(templates, Sequence):
        return False
    return any(_template_name(t) in names for t in templates)


def _template_name(ref: object) -> str | None:
    """A reference's templateName when it is a string; user objects may hold anything there."""
    name = ref.get("templateName") if isinstance(ref, dict) else None
    return name if isinstance(name, str) else None


def _check_inserted(count: int, what: str) -> None:
    if count > MAX_INSERTED_STEPS:
        raise AnnotationError(
            "spec.strategy.canary.steps",
            f"more than {MAX_INSERTED_STEPS} steps to insert ({what}); the webhook inserts at most "
            f"{MAX_INSERTED_STEPS} per Rollout, a limit on the size of its mutation",
        )


def dependency_gate(policy: Policy) -> dict:
    """The step that holds a dependent agent's canary until the agents it calls are settled."""
    return {"analysis": {"templates": [policy.dependency_template.to_argo()], "args": analysis_args(policy)}}


def _first_canary_step(steps: Sequence) -> int | None:
    return next((i for i, step in enumerate(steps) if isinstance(step, dict) and "setWeight" in step),
                None)


def _needs_gate(steps: Sequence, gate: dict | None) -> bool:
    if gate is None or _first_canary_step(steps) is None:
        return False
    names = {_template_name(t) for t in gate["analysis"]["templates"]}
    return not any(_references(s.get("analysis"), names) for s in steps if isinstance(s, dict))


def canary_ops(canary: Mapping, templates: Sequence[TemplateRef], policy: Policy,
               background: Sequence[TemplateRef] = (), gate: dict | None = None) -> list[dict]:
    """Steps and analysis for a canary: the quality gates after each pause (unless the Rollout has
    its own), the judge's background looks, and `gate` before the first setWeight when given."""
    base = ("spec", "strategy", "canary", "steps")
    steps = canary.get("steps")
    if steps is not None and (not isinstance(steps, list)):
        raise AnnotationError("spec.strategy.canary.steps", "expected a list")
    step_list = steps or []
    names = {t.name for t in templates}
    inline = [s.get("analysis") for s in step_list if isinstance(s, dict) and "analysis" in s
              and not (gate and _references(s.get("analysis"), {policy.dependency_template.name}))]
    # Our own background analysis survives a `kubectl apply` of the user's steps (the user never
    # wrote it), so it is not a reason to leave those steps ungated.
    ours = _references(canary.get("analysis"), {t.name for t in background})
    if policy.mode == ALWAYS_APPEND:
        has_analysis = any(_references(a, names) for a in inline)
    else:
        has_analysis = bool(inline) or (canary.get("analysis") is not None and not ours)
    inject = bool(templates) and not has_analysis

    if not step_list:
        defaults = copy.deepcopy(list(policy.default_steps))
        gated = inject and not any("analysis" in s for s in defaults)
        positions = analysis_positions(defaults, MAX_INSERTED_STEPS) if gated else []
        what = f"policy {policy.name!r} defaultSteps and their analysis"
        _check_inserted(len(defaults) + len(positions), what)
        plan = look_plan(defaults, policy.look_interval) if gated else None
        for offset, position in enumerate(positions):
            defaults.insert(position + offset, {"analysis": analysis_block(templates, policy, plan)})
        if _needs_gate(defaults, gate):
            defaults.insert(_first_canary_step(defaults), gate)
        if not defaults:
            return []
        looks = _background_op(canary, defaults, plan, background, policy) if positions else []
        if steps is None:
            return [{"op": "add", "path": pointer(*base), "value": defaults}, *looks]
        return [{"op": "add", "path": pointer(*base, "-"), "value": s} for s in defaults] + looks

    insertions: list[tuple[int, dict]] = []
    plan = None
    if inject:
        positions = analysis_positions(step_list, MAX_INSERTED_STEPS)
        _check_inserted(len(positions), "one analysis step per setWeight below 100")
        plan = look_plan(step_list, policy.look_interval) if positions else None
        insertions = [(p, {"analysis": analysis_block(templates, policy, plan)}) for p in positions]
    effective = list(step_list)
    if _needs_gate(step_list, gate):
        first = _first_canary_step(step_list)
        insertions.insert(0, (first, gate))  # every analysis position lies after the first setWeight
        effective.insert(first, gate)
    ops = []
    for offset, (position, step) in enumerate(insertions):
        end = position == len(step_list)
        ops.append({"op": "add", "path": pointer(*base, "-" if end else position + offset), "value": step})
    return ops + (_background_op(canary, effective, plan, background, policy) if plan else [])


def blue_green_ops(
    blue_green: Mapping, templates: Sequence[TemplateRef], policy: Policy
) -> list[dict]:
    base = ("spec", "strategy", "blueGreen", "prePromotionAnalysis")
    if not templates:
        return []
    existing = blue_green.get("prePromotionAnalysis")
    if existing is None:
        return [{"op": "add", "path": pointer(*base), "value": analysis_block(templates, policy)}]
    if policy.mode != ALWAYS_APPEND or not isinstance(existing, dict):
        return []
    ops = []
    present = existing.get("templates")
    if not isinstance(present, list):
        return []
    names = {_template_name(t) for t in present}
    for ref in templates:
        if ref.name not in names:
            ops.append({"op": "add", "path": pointer(*base, "templates", "-"), "value": ref.to_argo()})
    if ops:
        args = existing.get("args")
        listed = args if isinstance(args, list) else []
        have = {a.get("name") for a in listed if isinstance(a, dict) and isinstance(a.get("name"), str)}
        missing = [a for a in analysis_args(policy) if a["name"] not in have]
        if args is None:
            ops.append({"op": "add", "path": pointer(*base, "args"), "value": missing})
        elif isinstance(args, list):
            ops += [{"op": "add", "path": pointer(*base, "args", "-"), "value": a} for a in missing]
    return ops


def _opted_in(annotations: Mapping, policy: Policy) -> bool:
    raw = annotations.get(cv.INJECT)
    if raw is None:
        return policy.selects_namespace
    if raw not in ("true", "false"):
        # Exact strings, as the webhook configuration's matchConditions compare them; an unquoted
        # YAML `true` would be refused by the API server anyway, so it is named here first.
        got = f"{raw!r}" if isinstance(raw, str) else f"{raw!r} (a {type(raw).__name__}; quote it)"
        raise AnnotationError(cv.INJECT, f'expected "true" or "false", got {got}')
    return raw == "true"


def _layer_warnings(version: CompositeVersion, old: object, policy: Policy) -> list[str]:
    warnings = []
    if version.undeclared:
        layers = ", ".join(version.undeclared)
        warnings.append(
            f"agentroll: undeclared layer(s) recorded as '{cv.UNSET}': {layers} "
            f"(set the {cv.PREFIX}<layer> annotations to version them)"
        )
    if isinstance(old, dict):
        try:
            before = composite_of(old, policy.model_env_vars)
        except AnnotationError:
            return warnings
        changed = version.changed_layers(before)
        if len(changed) >= 2:
            detail = "; ".join(f"{layer} {a} -> {b}" for layer, a, b in changed)
            warnings.append(
                f"agentroll: {len(changed)} layers change at once ({detail}): "
                "a regression could not be attributed to one layer"
            )
    return warnings


# What the webhook writes on a pod template besides labels: the raw layers and the tool list.
TEMPLATE_ANNOTATIONS = (*cv.VERSION_LABELS, cv.TOOLS, cv.TOOL_REQUIREMENTS)
TOOL_SERVER_LABELS = (cv.TOOL_SERVER, cv.TOOL_SERVER_VERSION)


def _removals(obj: Mapping, places: Sequence[tuple[tuple[str, ...], Sequence[str]]]
              ) -> tuple[list[dict], list[str]]:
    """Remove ops for the keys present at each place, and what they remove (for a warning)."""
    ops, removed = [], []
    for path, keys in places:
        node: object = obj
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for key in keys:
                if key in node:
                    ops.append({"op": "remove", "path": pointer(*path, key)})
                    removed.append(f"{'.'.join(path)}[{key}]")
    return ops, removed


def _has_template(obj: Mapping) -> bool:
    spec = obj.get("spec")
    return isinstance(spec, dict) and isinstance(spec.get("template"), dict)


def strip_version(rollout: Mapping) -> Decision:
    """A Rollout that is not opted in must not claim a composite version: version labels (and the
    raw layers on its pod template) that a person wrote, or that an earlier opt-in left, would be
    trusted by `status` and by the gates. Removed here, with a warning naming them."""
    places = [(("metadata", "labels"), cv.VERSION_LABELS)]
    if _has_template(rollout):
        places += [(("spec", "template", "metadata", "labels"), cv.VERSION_LABELS),
                   (("spec", "template", "metadata", "annotations"), TEMPLATE_ANNOTATIONS)]
    ops, removed = _removals(rollout, places)
    if not ops:
        return Decision()
    return Decision(patch=ops, warnings=[
        f"agentroll: the Rollout is not opted in ({cv.INJECT}), so its composite version was "
        f"removed: {', '.join(removed)}"
    ])


def tool_server_decision(obj: Mapping, kind: str, old: Mapping | None, policy: Policy,
                         network: NetworkView | None) -> Decision:
    """Label a tool server (Rollout or Deployment) with its tool and version, on the object and its
    pods; refuse a version that breaks an agent's requirements (or warn, per policy). Tool-server
    labels without the annotation are removed: only the webhook vouches for them."""
    try:
        server = net.tool_server_of(obj, kind)
        if server is None:
            places = [(("metadata", "labels"), TOOL_SERVER_LABELS)]
            if _has_template(obj):
                places.append((("spec", "template", "metadata", "labels"), TOOL_SERVER_LABELS))
            ops, removed = _removals(obj, places)
            warning = f"agentroll: no {cv.TOOL_SERVER} annotation, so these labels were removed: "
            return Decision(patch=ops, warnings=[warning + ", ".join(removed)] if ops else [])
        labels = server.labels()
        ops = ensure(obj, ("metadata",), {"labels": labels})
        if _has_template(obj):
            ops += ensure(obj, ("spec", "template", "metadata"), {"labels": labels})
        findings = check_tool_server(server, old, policy, network)
    except AnnotationError as err:
        return deny(f"agentroll: {err}")
    if findings.denials:
        return deny(" ".join(findings.denials))
    return Decision(patch=ops, warnings=findings.warnings)


def _combine(first: Decision, second: Decision) -> Decision:
    if not first.allowed:
        return first
    if not second.allowed:
        return second
    return Decision(patch=first.patch + second.patch, warnings=first.warnings + second.warnings,
                    version=first.version)


def mutate_rollout(
    rollout: Mapping, policy: Policy, old: Mapping | None = None, network: NetworkView | None = None
) -> Decision:
    """Mutate one Rollout object (already known to be a Rollout being created or updated, whose
    metadata and annotations `mutate` has checked are maps)."""
    try:
        annotations = (rollout.get("metadata") or {}).get("annotations") or {}
        if not _opted_in(annotations, policy):
            return strip_version(rollout)
        version = composite_of(rollout, policy.model_env_vars)
        templates = chosen_templates(annotations, policy)
        labels = version.labels()
        depends_on = net.depends_on_of(annotations)
        findings = check_agent(rollout, old, policy, network, depends_on)
        if findings.denials:
            return deny(" ".join(findings.denials))

        ops = ensure(rollout, ("metadata",), {"labels": labels})
        warnings = _layer_warnings(version, old, policy) + findings.warnings
        spec = rollout.get("spec") or {}
        if not isinstance(spec, dict):
            raise AnnotationError("spec", "expected a map")
        if isinstance(spec.get("template"), dict):
            ops += ensure(
                rollout,
                ("spec", "template", "metadata"),
                {"labels": labels, "annotations": version.annotations()},
            )
            if version.requirements is None:  # requirements dropped: so is their raw copy
                ops += _removals(rollout, [(("spec", "template", "metadata", "annotations"),
                                            (cv.TOOL_REQUIREMENTS,))])[0]
        elif spec.get("workloadRef") is not None:
            warnings.append(
                "agentroll: spec.workloadRef: only the Rollout is labelled; pod labels "
                f"({cv.COMPOSITE_VERSION} and the layers) must come from the referenced workload"
            )

        strategy = spec.get("strategy") or {}
        if not isinstance(strategy, dict):
            raise AnnotationError("spec.strategy", "expected a map")
        if isinstance(strategy.get("canary"), dict):
            # Templates the annotation chose are the whole gate; the policy's come with its looks.
            background = () if cv.ANALYSIS in annotations else policy.background_templates
            gate = dependency_gate(policy) if depends_on and policy.dependency_order == WAIT else None
            ops += canary_ops(strategy["canary"], templates, policy, background, gate)
        elif isinstance(strategy.get("blueGreen"), dict):
            ops += blue_green_ops(strategy["blueGreen"], templates, policy)
            if depends_on:
                warnings.append(f"agentroll: {cv.DEPENDS_ON}: only canary Rollouts wait for their "
                                "dependencies; this blue-green Rollout does not")
        return Decision(patch=ops, warnings=warnings, version=version)
    except AnnotationError as err:
        return deny(f"agentroll: {err}")


def mutate(request: Mapping, policy: Policy, network: NetworkView | None = None) -> Decision:
    """Decide on an AdmissionRequest (the `request` of an admission.k8s.io/v1 AdmissionReview).

    `network`: the webhook's view of agents and tool servers; without it (a policy file, the
    offline `inject`) the rules that need other objects are not checked."""
    kind = request.get("kind") or {}
    if not isinstance(kind, dict):
        return Decision()
    target = (kind.get("group"), kind.get("kind"))
    if target not in (("argoproj.io", "Rollout"), ("apps", "Deployment")):
        return Decision()
    if request.get("operation") not in MUTATED_OPERATIONS or request.get("subResource"):
        return Decision()
    obj = request.get("object")
    if not isinstance(obj, dict):
        return deny(f"agentroll: request.object: expected a {target[1]} object")
    old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
    old = old if isinstance(old, dict) else None
    if not isinstance(obj.get("metadata") or {}, dict):
        return deny("agentroll: metadata: expected a map")
    if not isinstance((obj.get("metadata") or {}).get("annotations") or {}, dict):
        return deny("agentroll: metadata.annotations: expected a map")
    if target[1] == "Deployment":
        return tool_server_decision(obj, "Deployment", old, policy, network)
    decision = mutate_rollout(obj, policy, old, network)
    if not _claims_tool_server(obj) or not decision.allowed:
        return decision
    if decision.patch:  # label the tool server on top of the agent's labels, not over them
        import jsonpatch

        obj = jsonpatch.apply_patch(obj, decision.patch)
    return _combine(decision, tool_server_decision(obj, "Rollout", old, policy, network))


def _claims_tool_server(obj: Mapping) -> bool:
    metadata = obj.get("metadata") or {}
    maps = [metadata.get("labels")]
    if _has_template(obj):
        template_metadata = obj["spec"]["template"].get("metadata")
        maps.append(template_metadata.get("labels") if isinstance(template_metadata, dict) else None)
    return cv.TOOL_SERVER in (metadata.get("annotations") or {}) or any(
        isinstance(m, dict) and any(k in m for k in TOOL_SERVER_LABELS) for m in maps)
