"""A judge measurement, as `kubectl agentroll status` shows it (pure).

Argo stores the judge's whole answer (`jsonPath: {$}`) as the measurement's value: the decision,
its reason and, per metric, canary and stable estimates with intervals, the statistic, the
boundary it is held against and the information fraction. This turns that JSON into rows a person
reads, and says in plain words why a canary was stopped.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

DECISIONS = ("continue", "fail", "pass", "inconclusive")


@dataclass(frozen=True)
class MetricEvidence:
    """One metric of the judge's evidence, as shown to people."""

    metric: str
    status: str
    canary: str
    stable: str
    difference: str
    statistic: str
    boundary: str
    information: str
    reason: str


@dataclass(frozen=True)
class VerdictView:
    """The judge's answer (a measurement's value), parsed for display."""

    decision: str
    reason: str
    minute: float | None
    metrics: tuple[MetricEvidence, ...]


def _answer(value: object, decisions: tuple[str, ...]) -> Mapping | None:
    """A measurement value that is a JSON object with one of these decisions, else None."""
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, Mapping) and data.get("decision") in decisions else None


def parse(value: object) -> VerdictView | None:
    """The judge's answer from a measurement value, or None when the value is something else."""
    data = _answer(value, DECISIONS)
    if data is None:
        return None
    metrics = data.get("metrics") if isinstance(data.get("metrics"), Mapping) else {}
    at = data.get("at_s")
    return VerdictView(
        decision=str(data["decision"]), reason=str(data.get("reason") or ""),
        minute=at / 60 if isinstance(at, (int, float)) and math.isfinite(at) else None,
        metrics=tuple(_metric(str(name), m) for name, m in metrics.items() if isinstance(m, Mapping)))


@dataclass(frozen=True)
class DependencyView:
    """The judge's answer to the dependency gate (GET /v1/dependencies)."""

    ready: bool
    reason: str
    waiting_on: tuple[str, ...]

    @property
    def decision(self) -> str:
        return "ready" if self.ready else "wait"


def parse_dependencies(value: object) -> DependencyView | None:
    data = _answer(value, ("ready", "wait"))
    if data is None:
        return None
    waiting = data.get("waitingOn") if isinstance(data.get("waitingOn"), list) else []
    return DependencyView(data.get("ready") is True, str(data.get("reason") or ""),
                          tuple(str(w.get("name")) for w in waiting if isinstance(w, Mapping)))


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _estimate(est: object, cost: bool) -> str:
    if not isinstance(est, Mapping) or _num(est.get("value")) is None:
        return "-"
    fmt = (lambda x: f"${x:.4f}") if cost else (lambda x: f"{x * 100:.1f}%")
    low, high = _num(est.get("low")), _num(est.get("high"))
    interval = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
    return fmt(_num(est["value"])) + interval


def _difference(est: object, cost: bool) -> str:
    value = _num(est.get("value")) if isinstance(est, Mapping) else None
    if value is None:
        return "-"
    return f"{value * 100:+.1f}%" if cost else f"{value * 100:+.1f} pts"


def _metric(name: str, m: Mapping) -> MetricEvidence:
    cost = name.startswith("cost")
    statistic, boundary, info = _num(m.get("statistic")), _num(m.get("boundary")), _num(
        m.get("information_fraction"))
    return MetricEvidence(
        metric=name, status=str(m.get("status") or "-"),
        canary=_estimate(m.get("canary"), cost), stable=_estimate(m.get("stable"), cost),
        difference=_difference(m.get("difference"), cost),
        statistic=f"{statistic:.2f}" if statistic is not None else "-",
        boundary=f"{boundary:.2f}" if boundary is not None else "none yet",
        information=f"{info:.0%}" if info is not None else "-",
        reason=str(m.get("reason") or ""))


def headline(view: VerdictView) -> str:
    """One line in plain words: what the judge decided and why."""
    when = f" at minute {view.minute:.1f}" if view.minute is not None else ""
    words = {"fail": "stopped the canary", "pass": "passed this step", "continue": "keeps watching",
             "inconclusive": "cannot decide yet"}[view.decision]
    return f"the judge {words}{when}: {view.reason}" if view.reason else f"the judge {words}{when}"
