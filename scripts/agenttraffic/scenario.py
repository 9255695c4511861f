"""A scenario is data: the quality of each agent version, keyed by any composite-version layer.

    default: {hallucination: 0.05, completion: 0.90, tool_success: 0.97, cost: 0.02, cost_cv: 1.0}
    versions:
      - match: {prompt-version: support-v9}     # a layer, by raw value or label value
        hallucination: 0.12
      - match: {model-version: big-model}
        cost: 0.03

Every `versions` entry whose `match` holds for a pod is applied on top of `default`, in order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

LAYERS = ("prompt-version", "model-version", "tools-version", "image-version", "composite-version")
PROBABILITIES = ("hallucination", "completion", "tool_success", "tool_correlation", "evaluated")


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Quality:
    """How one agent version behaves, per task."""

    hallucination: float = 0.05     # P(an evaluation says hallucinated)
    completion: float = 0.90        # P(outcome = success)
    tool_success: float = 0.97      # mean P(a tool call is ok)
    tool_calls: float = 3.0         # mean tool calls per task (Poisson)
    tool_correlation: float = 0.0   # intra-task correlation of tool failures (beta-binomial), 0..1
    cost: float = 0.02              # mean USD per task
    cost_cv: float = 1.0            # coefficient of variation of per-task cost (lognormal)
    evaluated: float = 1.0          # P(a task is evaluated for hallucination)


@dataclass(frozen=True)
class Rule:
    match: dict[str, str]
    changes: dict[str, float]


@dataclass(frozen=True)
class Scenario:
    default: Quality
    rules: tuple[Rule, ...] = ()

    def quality_for(self, layers: dict[str, str]) -> Quality:
        """The quality of a pod whose composite-version layers (raw values and labels) are given."""
        q = self.default
        for rule in self.rules:
            if all(layers.get(k) == v or layers.get(f"{k}/label") == v for k, v in rule.match.items()):
                q = replace(q, **rule.changes)
        return q


def _quality_changes(data: Any, where: str) -> dict[str, float]:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping of quality fields")
    known = {f.name for f in fields(Quality)}
    out = {}
    for key, value in data.items():
        if key not in known:
            raise ScenarioError(f"{where}.{key}: unknown field (expected one of {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ScenarioError(f"{where}.{key}: expected a number, got {value!r}")
        if key in PROBABILITIES and not 0 <= value <= 1:
            raise ScenarioError(f"{where}.{key}: expected a probability in [0, 1], got {value}")
        if key == "tool_correlation" and value >= 1:
            raise ScenarioError(f"{where}.{key}: must be below 1")
        if key not in PROBABILITIES and value < 0:
            raise ScenarioError(f"{where}.{key}: must not be negative, got {value}")
        out[key] = float(value)
    return out


def parse(data: Any) -> Scenario:
    """A Scenario from parsed YAML/JSON, or ScenarioError naming the field at fault."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError("scenario: expected a mapping with `default` and `versions`")
    unknown = set(data) - {"default", "versions"}
    if unknown:
        raise ScenarioError(f"scenario.{sorted(unknown)[0]}: unknown key (expected default, versions)")
    default = replace(Quality(), **_quality_changes(data.get("default") or {}, "default"))
    versions = data.get("versions") or []
    if not isinstance(versions, list):
        raise ScenarioError("versions: expected a list of {match: {LAYER: VALUE}, ...quality}")
    rules = []
    for i, entry in enumerate(versions):
        where = f"versions[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), dict) or not entry["match"]:
            raise ScenarioError(f"{where}.match: expected a non-empty mapping of layer to value")
        match = {}
        for layer, value in entry["match"].items():
            if layer not in LAYERS:
                raise ScenarioError(f"{where}.match.{layer}: unknown layer "
                                    f"(expected one of {', '.join(LAYERS)})")
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ScenarioError(f"{where}.match.{layer}: expected a string")
            match[layer] = str(value)
        rules.append(Rule(match, _quality_changes({k: v for k, v in entry.items() if k != "match"}, where)))
    return Scenario(default, tuple(rules))


def pod_layers(pod: dict) -> dict[str, str]:
    """A pod's layers as the webhook wrote them: raw values from annotations, label values."""
    meta = pod.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    out = {}
    for layer in LAYERS:
        key = f"agentroll.dev/{layer}"
        if key in annotations:
            out[layer] = annotations[key]
        if key in labels:
            out[f"{layer}/label"] = labels[key]
            out.setdefault(layer, labels[key])
    return out
