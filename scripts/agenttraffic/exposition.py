"""Counters -> the Prometheus text exposition format (version 0.0.4) of the agent metrics contract."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .simulate import COST_BUCKETS_USD, PodCounters


@dataclass(frozen=True)
class PodSeries:
    """One pod's identity on every series it exports."""

    namespace: str
    pod: str
    rollout: str
    pod_template_hash: str
    composite_version: str
    counters: PodCounters

    def labels(self, **extra: str) -> str:
        pairs = {"namespace": self.namespace, "pod": self.pod, "rollout": self.rollout,
                 "rollouts_pod_template_hash": self.pod_template_hash,
                 "agentroll_dev_composite_version": self.composite_version, **extra}
        return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


HEADERS = {
    "agentroll_tasks_total": ("counter", "Finished agent tasks by outcome."),
    "agentroll_evaluations_total": ("counter", "Evaluator judgments of task answers by verdict."),
    "agentroll_tool_calls_total": ("counter", "Tool calls by status and tool."),
    "agentroll_tasks_with_tool_errors_total": ("counter", "Tasks with at least one failed tool call."),
    "agentroll_cost_usd_total": ("counter", "Money spent on finished tasks, US dollars."),
    "agentroll_task_cost_usd": ("histogram", "Cost of one finished task, US dollars."),
}


def render(pods: Iterable[PodSeries]) -> str:
    pods = list(pods)
    lines: dict[str, list[str]] = {name: [] for name in HEADERS}
    for s in pods:
        c = s.counters
        for outcome, n in sorted(c.tasks.items()):
            lines["agentroll_tasks_total"].append(f"agentroll_tasks_total{s.labels(outcome=outcome)} {n}")
        for verdict, n in sorted(c.evaluations.items()):
            lines["agentroll_evaluations_total"].append(
                f"agentroll_evaluations_total{s.labels(verdict=verdict, evaluator='llm-judge')} {n}")
        for (tool, status), n in sorted(c.tool_calls.items()):
            lines["agentroll_tool_calls_total"].append(
                f"agentroll_tool_calls_total{s.labels(status=status, gen_ai_tool_name=tool)} {n}")
        lines["agentroll_tasks_with_tool_errors_total"].append(
            f"agentroll_tasks_with_tool_errors_total{s.labels()} {c.tasks_with_tool_errors}")
        lines["agentroll_cost_usd_total"].append(
            f"agentroll_cost_usd_total{s.labels()} {_number(c.cost_usd)}")
        cumulative = 0
        for bound, n in zip((*COST_BUCKETS_USD, "+Inf"), c.cost_buckets, strict=True):
            cumulative += n
            lines["agentroll_task_cost_usd"].append(
                f"agentroll_task_cost_usd_bucket{s.labels(le=str(bound))} {cumulative}")
        lines["agentroll_task_cost_usd"] += [
            f"agentroll_task_cost_usd_sum{s.labels()} {_number(c.cost_usd)}",
            f"agentroll_task_cost_usd_count{s.labels()} {c.task_count}"]
    out = []
    for name, (kind, help_text) in HEADERS.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines[name]]
    return "\n".join(out) + "\n"
