"""Tasks -> counter increments, one pod at a time, with a seeded random generator.

Per task: an outcome (success with the version's completion probability), an evaluation (with
probability `evaluated`; hallucinated with the version's rate), a Poisson number of tool calls whose
failure probability is drawn per task from a Beta distribution with the version's mean and
intra-task correlation (so failures cluster within tasks, as real ones do), and a lognormal cost.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

from kubectl_agentroll.judge import COST_BUCKETS_USD  # the contract's agentroll_task_cost_usd buckets

from .scenario import Quality

FAILED_OUTCOMES = ("failure", "error", "timeout")
TOOL_ERRORS = ("error", "timeout")


@dataclass
class PodCounters:
    """Cumulative counts of one pod since it appeared (every label value present from zero)."""

    tools: tuple[str, ...] = ("tool",)
    tasks: Counter = field(default_factory=lambda: Counter({o: 0 for o in ("success", *FAILED_OUTCOMES)}))
    evaluations: Counter = field(default_factory=lambda: Counter({"grounded": 0, "hallucinated": 0}))
    tool_calls: Counter = field(default_factory=Counter)   # (tool, status) -> calls
    tasks_with_tool_errors: int = 0
    cost_usd: float = 0.0
    cost_buckets: list[int] = field(default_factory=lambda: [0] * (len(COST_BUCKETS_USD) + 1))

    def __post_init__(self) -> None:
        for tool in self.tools:
            for status in ("ok", *TOOL_ERRORS):
                self.tool_calls[(tool, status)] += 0

    @property
    def task_count(self) -> int:
        return sum(self.tasks.values())


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal approximation above 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _tool_failure_probability(rng: random.Random, q: Quality) -> float:
    mean = 1 - q.tool_success
    if q.tool_correlation <= 0 or mean in (0.0, 1.0):
        return mean
    scale = (1 - q.tool_correlation) / q.tool_correlation
    return rng.betavariate(mean * scale, (1 - mean) * scale)


def lognormal_cost(rng: random.Random, mean: float, cv: float) -> float:
    if mean <= 0:
        return 0.0
    sigma2 = math.log1p(cv * cv)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


def run_tasks(rng: random.Random, q: Quality, n: int, into: PodCounters) -> None:
    for _ in range(n):
        if rng.random() < q.completion:
            into.tasks["success"] += 1
        else:
            into.tasks[FAILED_OUTCOMES[rng.randrange(len(FAILED_OUTCOMES))]] += 1
        if rng.random() < q.evaluated:
            into.evaluations["hallucinated" if rng.random() < q.hallucination else "grounded"] += 1
        p_fail = _tool_failure_probability(rng, q)
        failed = 0
        for _ in range(poisson(rng, q.tool_calls)):
            tool = into.tools[rng.randrange(len(into.tools))]
            if rng.random() < p_fail:
                failed += 1
                into.tool_calls[(tool, TOOL_ERRORS[rng.randrange(len(TOOL_ERRORS))])] += 1
            else:
                into.tool_calls[(tool, "ok")] += 1
        into.tasks_with_tool_errors += failed > 0
        cost = lognormal_cost(rng, q.cost, q.cost_cv)
        into.cost_usd += cost
        for i, bound in enumerate(COST_BUCKETS_USD):
            if cost <= bound:
                into.cost_buckets[i] += 1
                break
        else:
            into.cost_buckets[-1] += 1
