"""Policy: the cluster-wide defaults a platform team sets once (the spec of an AgentRollPolicy).

Pure data and validation. Where policies come from (a file, the cluster) is the webhook's concern;
the mutation engine only receives the one `Policy` that governs the object's namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubectl_agentroll.composite import DEFAULT_MODEL_ENV_VARS

INJECT_IF_ABSENT = "inject-if-absent"
ALWAYS_APPEND = "always-append"
MODES = (INJECT_IF_ABSENT, ALWAYS_APPEND)
ENFORCE, WARN, WAIT = "enforce", "warn", "wait"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^[0-9]+[smh]$")

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

BUILTIN_DEFAULT_STEPS: tuple[dict, ...] = (
    {"setWeight": 5},
    {"pause": {"duration": "5m"}},
    {"setWeight": 25},
    {"pause": {"duration": "10m"}},
    {"setWeight": 50},
    {"pause": {"duration": "10m"}},
)


class PolicyError(ValueError):
    """A policy is invalid; the message names the field at fault."""


def is_dns_subdomain(name: str) -> bool:
    """A DNS-1123 subdomain: what Kubernetes accepts as the name of most objects (templates, Rollouts)."""
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


@dataclass(frozen=True)
class TemplateRef:
    name: str
    cluster_scope: bool = True

    def to_argo(self) -> dict:
        ref: dict = {"templateName": self.name}
        if self.cluster_scope:
            ref["clusterScope"] = True
        return ref


@dataclass(frozen=True)
class Policy:
    """What the webhook does to an opted-in Rollout in the namespaces this policy governs.

    `default_steps` are the canary steps without analysis; the engine inserts the analysis steps by
    the same rule it applies to a user's steps. `selects_namespace` is True when the namespace was
    selected by the policy, which opts its Rollouts in without an annotation.
    """

    name: str = "built-in"
    templates: tuple[TemplateRef, ...] = (TemplateRef("agent-quality"),)
    background_templates: tuple[TemplateRef, ...] = (TemplateRef("agent-quality-watch"),)
    look_interval: str = "1m"
    extra_args: tuple[dict, ...] = ()
    mode: str = INJECT_IF_ABSENT
    allowed_templates: tuple[str, ...] | None = None
    default_steps: tuple[dict, ...] = BUILTIN_DEFAULT_STEPS
    model_env_vars: tuple[str, ...] = DEFAULT_MODEL_ENV_VARS
    selects_namespace: bool = False
    priority: int = 0
    tool_requirements: str = ENFORCE
    """enforce: an unmet tool requirement (or an update that breaks one) is denied; warn: warned."""
    dependency_order: str = WAIT
    """wait: a dependent agent's canary waits for its dependencies (a gate); warn: a warning only."""
    tool_server_namespaces: tuple[str, ...] = ()
    """Where agents' tool servers live besides the agent's own namespace."""
    dependency_template: TemplateRef = TemplateRef("agent-dependencies")
    namespace_selector: Mapping | None = field(default=None, compare=False)
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)
    """Derived data the engine computes once per policy (policies are immutable)."""

    def allows(self, template: str) -> bool:
        return self.allowed_templates is None or template in self.allowed_templates


BUILTIN = Policy()


def _require(cond: bool, path: str, expected: str) -> None:
    if not cond:
        raise PolicyError(f"{path}: expected {expected}")


def _string_list(value: object, path: str, check=None, what: str = "a string") -> tuple[str, ...]:
    _require(isinstance(value, Sequence) and not isinstance(value, str), path, "a list")
    for i, item in enumerate(value):
        _require(isinstance(item, str) and (check is None or check(item)), f"{path}[{i}]", what)
    return tuple(value)


def _template_ref(value: object, path: str) -> TemplateRef:
    if isinstance(value, str):
        value = {"name": value}
    _require(isinstance(value, Mapping), path, "a template name or {name, clusterScope}")
    name = value.get("name", value.get("templateName"))
    _require(isinstance(name, str) and is_dns_subdomain(name), f"{path}.name", "a DNS-1123 name")
    cluster_scope = value.get("clusterScope", True)
    _require(isinstance(cluster_scope, bool), f"{path}.clusterScope", "true or false")
    return TemplateRef(name, cluster_scope)


def _arg(value: object, path: str) -> dict:
    _require(isinstance(value, Mapping), path, "an analysis arg {name, value|valueFrom}")
    _require(isinstance(value.get("name"), str) and value["name"], f"{path}.name", "a string")
    has_value = isinstance(value.get("value"), str)
    has_from = isinstance(value.get("valueFrom"), Mapping)
    _require(has_value or has_from, path, "'value' (a string) or 'valueFrom' (a map)")
    return dict(value)


def _step(value: object, path: str) -> dict:
    _require(isinstance(value, Mapping) and len(value) == 1, path, "a canary step with one key")
    if "setWeight" in value:
        weight = value["setWeight"]
        _require(
            isinstance(weight, int) and not isinstance(weight, bool) and 0 <= weight <= 100,
            f"{path}.setWeight",
            "an integer from 0 to 100",
        )
    return dict(value)


def policy_from_spec(spec: object, name: str = "policy") -> Policy:
    """Build a Policy from an AgentRollPolicy `spec` (or a policy file); PolicyError names the field."""
    if spec is None:
        spec = {}
    _require(isinstance(spec, Mapping), "spec", "a map")
    kwargs: dict = {"name": name}

    analysis = spec.get("analysis") or {}
    _require(isinstance(analysis, Mapping), "spec.analysis", "a map")
    if "templates" in analysis:
        templates = analysis["templates"]
        _require(isinstance(templates, list) and templates, "spec.analysis.templates", "a list")
        kwargs["templates"] = tuple(
            _template_ref(t, f"spec.analysis.templates[{i}]") for i, t in enumerate(templates)
        )
    if "args" in analysis:
        args = analysis["args"] or []
        _require(isinstance(args, list), "spec.analysis.args", "a list")
        kwargs["extra_args"] = tuple(_arg(a, f"spec.analysis.args[{i}]") for i, a in enumerate(args))
    if "templates" in analysis and "backgroundTemplates" not in analysis:
        kwargs["background_templates"] = ()  # a policy that names its own gate gets only that gate
    if "backgroundTemplates" in analysis:
        background = analysis["backgroundTemplates"] or []
        _require(isinstance(background, list), "spec.analysis.backgroundTemplates", "a list")
        kwargs["background_templates"] = tuple(
            _template_ref(t, f"spec.analysis.backgroundTemplates[{i}]") for i, t in enumerate(background)
        )
    if "lookInterval" in analysis:
        interval = analysis["lookInterval"]
        _require(isinstance(interval, str) and _DURATION.match(interval) is not None
                 and int(interval[:-1]) > 0, "spec.analysis.lookInterval", "a duration such as 30s, 1m or 2h")
        kwargs["look_interval"] = interval
    if "mode" in analysis:
        _require(analysis["mode"] in MODES, "spec.analysis.mode", " or ".join(MODES))
        kwargs["mode"] = analysis["mode"]

    network = spec.get("network") or {}
    _require(isinstance(network, Mapping), "spec.network", "a map")
    if "toolRequirements" in network:
        _require(network["toolRequirements"] in (ENFORCE, WARN), "spec.network.toolRequirements",
                 f"{ENFORCE} or {WARN}")
        kwargs["tool_requirements"] = network["toolRequirements"]
    if "dependencyOrder" in network:
        _require(network["dependencyOrder"] in (WAIT, WARN), "spec.network.dependencyOrder",
                 f"{WAIT} or {WARN}")
        kwargs["dependency_order"] = network["dependencyOrder"]
    if network.get("toolServerNamespaces") is not None:
        kwargs["tool_server_namespaces"] = _string_list(
            network["toolServerNamespaces"], "spec.network.toolServerNamespaces",
            lambda n: len(n) <= 63 and _DNS_LABEL.match(n) is not None, "a namespace name")
    if network.get("dependencyTemplate") is not None:
        kwargs["dependency_template"] = _template_ref(network["dependencyTemplate"],
                                                      "spec.network.dependencyTemplate")

    if spec.get("allowedTemplates") is not None:
        kwargs["allowed_templates"] = _string_list(
            spec["allowedTemplates"], "spec.allowedTemplates", is_dns_subdomain, "a DNS-1123 name"
        )
    if spec.get("defaultSteps") is not None:
        steps = spec["defaultSteps"]
        _require(isinstance(steps, list), "spec.defaultSteps", "a list")
        kwargs["default_steps"] = tuple(
            _step(s, f"spec.defaultSteps[{i}]") for i, s in enumerate(steps)
        )
    if spec.get("modelEnvVars") is not None:
        kwargs["model_env_vars"] = _string_list(
            spec["modelEnvVars"], "spec.modelEnvVars", _ENV_VAR.match, "an env var name"
        )
    if spec.get("priority") is not None:
        priority = spec["priority"]
        _require(
            isinstance(priority, int) and not isinstance(priority, bool), "spec.priority", "an integer"
        )
        kwargs["priority"] = priority
    if spec.get("namespaceSelector") is not None:
        _require(isinstance(spec["namespaceSelector"], Mapping), "spec.namespaceSelector", "a map")
        _check_selector(spec["namespaceSelector"], "spec.namespaceSelector")
        kwargs["namespace_selector"] = spec["namespaceSelector"]
    return Policy(**kwargs)


def policy_from_document(doc: object) -> Policy:
    """A policy file holds either an AgentRollPolicy object or just its spec."""
    if isinstance(doc, Mapping) and doc.get("kind") == "AgentRollPolicy":
        metadata = doc.get("metadata") or {}
        name = metadata.get("name", "policy") if isinstance(metadata, Mapping) else "policy"
        return policy_from_spec(doc.get("spec"), name=str(name))
    return policy_from_spec(doc)


# -- namespace selection ------------------------------------------------------------------------
#
# A policy with a `namespaceSelector` governs the namespaces it selects and opts their Rollouts in
# (a Rollout's `agentroll.dev/inject: "false"` still opts out). A policy without one governs every
# namespace no selecting policy governs, and opts nothing in (annotated Rollouts only). Among the
# candidates of a tier the highest `priority` wins, ties broken by name in ascending order. The
# selector follows metav1.LabelSelector: `{}` selects every namespace.

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _check_selector(selector: Mapping, path: str) -> None:
    for key in selector:
        _require(key in ("matchLabels", "matchExpressions"), f"{path}.{key}",
                 "matchLabels or matchExpressions")
    labels = selector.get("matchLabels") or {}
    _require(isinstance(labels, Mapping), f"{path}.matchLabels", "a map of label to value")
    for key, value in labels.items():
        _require(isinstance(key, str) and isinstance(value, str), f"{path}.matchLabels.{key}",
                 "a string value")
    expressions = selector.get("matchExpressions") or []
    _require(isinstance(expressions, list), f"{path}.matchExpressions", "a list")
    for i, expr in enumerate(expressions):
        where = f"{path}.matchExpressions[{i}]"
        _require(isinstance(expr, Mapping), where, "a map {key, operator, values}")
        _require(isinstance(expr.get("key"), str) and bool(expr["key"]), f"{where}.key", "a string")
        operator = expr.get("operator")
        _require(operator in SELECTOR_OPERATORS, f"{where}.operator", ", ".join(SELECTOR_OPERATORS))
        values = expr.get("values")
        if operator in ("In", "NotIn"):
            _require(isinstance(values, list) and bool(values)
                     and all(isinstance(v, str) for v in values),
                     f"{where}.values", f"a non-empty list of strings for {operator}")
        else:
            _require(not values, f"{where}.values", f"no values for {operator}")


def selector_matches(selector: Mapping, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels entry and every expression must hold."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, operator = expr["key"], expr["operator"]
        if operator == "In":
            if key not in labels or labels[key] not in expr["values"]:
                return False
        elif operator == "NotIn":
            if key in labels and labels[key] in expr["values"]:
                return False
        elif operator == "Exists":
            if key not in labels:
                return False
        elif key in labels:  # DoesNotExist
            return False
    return True


def selects(policy: Policy, namespace_labels: Mapping[str, str]) -> bool:
    """True when the policy's namespaceSelector selects a namespace with these labels.

    A policy without a selector selects no namespace (it is a default, see `resolve`).
    """
    if policy.namespace_selector is None:
        return False
    return selector_matches(policy.namespace_selector, namespace_labels)


def _rank(policy: Policy) -> tuple[int, str]:
    return (-policy.priority, policy.name)


def resolve(
    policies: Sequence[Policy], namespace_labels: Mapping[str, str], fallback: Policy = BUILTIN
) -> Policy:
    """The one policy governing a namespace with these labels.

    First tier: the policies whose selector selects the namespace; the winner is returned with
    `selects_namespace=True`. Second tier, when none does: the policies without a selector, whose
    winner governs annotated Rollouts only. In each tier the highest priority wins, then the name
    that sorts first. `fallback` (the built-in defaults) when no policy applies.
    """
    selecting = [p for p in policies if selects(p, namespace_labels)]
    if selecting:
        return replace(min(selecting, key=_rank), selects_namespace=True)
    defaults = [p for p in policies if p.namespace_selector is None]
    if defaults:
        return replace(min(defaults, key=_rank), selects_namespace=False)
    return fallback


def load_policy_file(path: str | Path) -> Policy:
    """Read a policy YAML file (an AgentRollPolicy or its spec); PolicyError names what is wrong.

    The one place a policy file is read, for `agentroll-webhook serve` and `kubectl agentroll inject`.
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise PolicyError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    try:
        return policy_from_document(doc)
    except PolicyError as err:
        raise PolicyError(f"{path}: {err}") from None
