#!/usr/bin/env python3
"""Simulate the `agent-quality` gate: false-abort rate on healthy canaries, power on degraded ones.

The gate formulas below are the ones the ClusterAnalysisTemplate's PromQL computes
(charts/agentroll/templates/analysistemplates.yaml), with the chart's default parameters read from
charts/agentroll/values.yaml, so the figures describe what ships.

Per metric and analysis step, over one rate window:

  rates (hallucination, task failure, tool-call error; "bad" events x out of n):
    Agresti-Caffo: p~ = (x + 1) / (n + 2) for canary (c) and stable (s)
    z = (p~c - p~s - margin) / sqrt(p~c (1 - p~c) / (nc + 2) + p~s (1 - p~s) / (ns + 2))
  cost per task (mean cost m = cost / tasks):
    z = (mc / ms - 1 - margin) / (cv * sqrt(1 / nc + 1 / ns))
  NaN (Inconclusive) when nc or ns is below the metric's minimum count;
  Failed when z > zCritical; Successful otherwise.

A rollout runs the default canary steps (5%, 25%, 50%); each analysis step measures once over a
window at that weight, so windows are independent. It aborts when any metric fails at any step,
pauses (for a human) when a step is inconclusive and nothing failed, and is promoted otherwise.

Traffic model: tasks per window T = rate * window; each task goes to the canary with probability
weight; every task is evaluated for hallucination; each task makes `tool_calls_per_task` tool
calls with independent outcomes; per-task cost is lognormal with the stated mean and coefficient of
variation. Run: python benchmarks/gate_simulation.py [--runs N] [--seed S] [--tasks-per-minute R]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

VALUES = Path(__file__).resolve().parents[1] / "charts" / "agentroll" / "values.yaml"
NAN = float("nan")


@dataclass(frozen=True)
class Gate:
    z_critical: float
    min_tasks: int
    min_evaluations: int
    min_tool_calls: int
    hallucination_margin: float
    task_failure_margin: float
    tool_error_margin: float
    cost_margin: float
    cost_cv: float

    @classmethod
    def from_chart(cls, path: Path = VALUES) -> Gate:
        v = yaml.safe_load(path.read_text())["analysisTemplates"]
        return cls(
            z_critical=float(v["zCritical"]),
            min_tasks=int(v["minTasks"]),
            min_evaluations=int(v["minEvaluations"]),
            min_tool_calls=int(v["minToolCalls"]),
            hallucination_margin=float(v["hallucinationMargin"]),
            task_failure_margin=float(v["taskFailureMargin"]),
            tool_error_margin=float(v["toolErrorMargin"]),
            cost_margin=float(v["costMargin"]),
            cost_cv=float(v["costCv"]),
        )


def rate_z(xc: float, nc: float, xs: float, ns: float, margin: float, min_n: int) -> float:
    """The PromQL of a rate metric: NaN below the minimum count, else the Agresti-Caffo z."""
    if nc < min_n or ns < min_n:
        return NAN
    pc = (xc + 1) / (nc + 2)
    ps = (xs + 1) / (ns + 2)
    se = math.sqrt(pc * (1 - pc) / (nc + 2) + ps * (1 - ps) / (ns + 2))
    return (pc - ps - margin) / se


def cost_z(cost_c: float, nc: float, cost_s: float, ns: float, margin: float, cv: float,
           min_n: int) -> float:
    if nc < min_n or ns < min_n:
        return NAN
    if cost_s == 0:
        return math.inf if cost_c > 0 else NAN
    ratio = (cost_c / nc) / (cost_s / ns)
    return (ratio - 1 - margin) / (cv * math.sqrt(1 / nc + 1 / ns))


def verdict(z: float, z_critical: float) -> str:
    """Argo with successCondition `result[0] <= zc` and failureCondition `result[0] > zc`."""
    if math.isnan(z):
        return "inconclusive"
    return "failed" if z > z_critical else "successful"


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact binomial draw by geometric skipping: O(n * min(p, 1 - p))."""
    if p <= 0 or n <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    log_q = math.log(1 - p)
    count, i = 0, 0
    while True:
        i += int(math.log(1 - rng.random()) / log_q) + 1
        if i > n:
            return count
        count += 1


@dataclass(frozen=True)
class Agent:
    hallucination: float = 0.05
    task_failure: float = 0.10
    tool_error: float = 0.03
    cost_mean: float = 0.02
    cost_cv: float = 1.0


@dataclass(frozen=True)
class Traffic:
    tasks_per_minute: float = 200
    window_minutes: float = 5
    weights: tuple[float, ...] = (0.05, 0.25, 0.50)
    tool_calls_per_task: int = 3


def total_cost(rng: random.Random, n: int, agent: Agent) -> float:
    if n == 0:
        return 0.0
    sigma2 = math.log(1 + agent.cost_cv**2)
    mu = math.log(agent.cost_mean) - sigma2 / 2
    if n > 200:  # CLT for the large (stable) side keeps the run fast; exact draws for the canary
        mean = agent.cost_mean * n
        return max(0.0, rng.gauss(mean, agent.cost_mean * agent.cost_cv * math.sqrt(n)))
    sigma = math.sqrt(sigma2)
    return sum(rng.lognormvariate(mu, sigma) for _ in range(n))


def step(rng: random.Random, gate: Gate, traffic: Traffic, weight: float, stable: Agent,
         canary: Agent) -> dict[str, str]:
    tasks = round(traffic.tasks_per_minute * traffic.window_minutes)
    nc = binomial(rng, tasks, weight)
    ns = tasks - nc
    k = traffic.tool_calls_per_task
    zs = {
        "hallucination": rate_z(binomial(rng, nc, canary.hallucination), nc,
                                binomial(rng, ns, stable.hallucination), ns,
                                gate.hallucination_margin, gate.min_evaluations),
        "task-completion": rate_z(binomial(rng, nc, canary.task_failure), nc,
                                  binomial(rng, ns, stable.task_failure), ns,
                                  gate.task_failure_margin, gate.min_tasks),
        "tool-call-success": rate_z(binomial(rng, nc * k, canary.tool_error), nc * k,
                                    binomial(rng, ns * k, stable.tool_error), ns * k,
                                    gate.tool_error_margin, gate.min_tool_calls),
        "cost-per-task": cost_z(total_cost(rng, nc, canary), nc, total_cost(rng, ns, stable), ns,
                                gate.cost_margin, gate.cost_cv, gate.min_tasks),
    }
    return {name: verdict(z, gate.z_critical) for name, z in zs.items()}


def rollout(rng, gate, traffic, stable, canary) -> tuple[str, list[dict[str, str]]]:
    steps = [step(rng, gate, traffic, w, stable, canary) for w in traffic.weights]
    for s in steps:  # a step that fails aborts; an inconclusive step pauses the rollout there
        if "failed" in s.values():
            return "aborted", steps
        if "inconclusive" in s.values():
            return "paused", steps
    return "promoted", steps


def plain_threshold_false_abort(rng, traffic, agent, runs, points=0.02) -> float:
    """The naive gate 'canary hallucination rate <= stable + 2 points' at the first (5%) step."""
    tasks = round(traffic.tasks_per_minute * traffic.window_minutes)
    aborted = 0
    for _ in range(runs):
        nc = binomial(rng, tasks, traffic.weights[0])
        ns = tasks - nc
        rc = binomial(rng, nc, agent.hallucination) / max(nc, 1)
        rs = binomial(rng, ns, agent.hallucination) / max(ns, 1)
        aborted += rc > rs + points
    return aborted / runs


SCENARIOS: tuple[tuple[str, dict], ...] = (
    ("healthy (canary = stable)", {}),
    ("hallucination 5% -> 10%", {"hallucination": 0.10}),
    ("hallucination 5% -> 15%", {"hallucination": 0.15}),
    ("task completion 90% -> 85%", {"task_failure": 0.15}),
    ("task completion 90% -> 80%", {"task_failure": 0.20}),
    ("tool-call success 97% -> 94%", {"tool_error": 0.06}),
    ("tool-call success 97% -> 90%", {"tool_error": 0.10}),
    ("cost per task +25%", {"cost_mean": 0.025}),
    ("cost per task +50%", {"cost_mean": 0.03}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="simulated rollouts per scenario")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--tasks-per-minute", type=float, default=200)
    parser.add_argument("--cost-cv", type=float, default=1.0,
                        help="true coefficient of variation of per-task cost (gate assumes costCv)")
    args = parser.parse_args()
    gate = Gate.from_chart()
    traffic = Traffic(tasks_per_minute=args.tasks_per_minute)
    stable = Agent(cost_cv=args.cost_cv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    weights = ", ".join(f"{w:.0%}" for w in traffic.weights)
    print(f"traffic {traffic.tasks_per_minute:g} tasks/min, {traffic.window_minutes:g}m window, "
          f"analysis at weights {weights}; {args.runs} rollouts per scenario, seed {args.seed}")
    print(f"gate: {gate}")
    print(f"stable agent: {stable}")
    naive = plain_threshold_false_abort(rng, traffic, stable, args.runs * 5)
    print(f"plain threshold 'canary hallucination <= stable + 2 points' at 5%: "
          f"false abort {naive:.1%}")
    header = (f"{'scenario':32} {'abort@5%':>9} {'abort@25%':>9} {'abort@50%':>9} "
              f"{'aborted':>8} {'paused':>7} {'promoted':>8}")
    print(header)
    print("-" * len(header))
    for name, change in SCENARIOS:
        canary = replace(stable, **change)
        outcomes = {"aborted": 0, "paused": 0, "promoted": 0}
        per_step_fail = [0] * len(traffic.weights)
        for _ in range(args.runs):
            outcome, steps = rollout(rng, gate, traffic, stable, canary)
            outcomes[outcome] += 1
            for i, s in enumerate(steps):  # per-step rates counted as if every step ran
                per_step_fail[i] += "failed" in s.values()
        cols = " ".join(f"{f / args.runs:>9.1%}" for f in per_step_fail)
        print(f"{name:32} {cols} {outcomes['aborted'] / args.runs:>8.1%} "
              f"{outcomes['paused'] / args.runs:>7.1%} {outcomes['promoted'] / args.runs:>8.1%}")
    print(f"({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
