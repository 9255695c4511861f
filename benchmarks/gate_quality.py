#!/usr/bin/env python3
"""Gate quality of the canary judge (kubectl_agentroll/judge.py) against the old PromQL gate.

Monte Carlo with per-minute counts. Per minute and side: Poisson task arrivals (rate x weight on
the canary); one hallucination evaluation per task; task failures binomial; three tool calls per
task, whose failures are independent, or (the "clustered" row) driven by a per-task latent
"bad tool day" (10% of tasks fail each call with probability 0.2, the others 0.0111: the same 3%
per call, but failures bunch within tasks); per-task cost lognormal (mean $0.02, cv 1 or 2),
binned into the judge's COST_BUCKETS_USD histogram (multinomial) with the cost sum drawn from the
binned conditional moments. The default plan: 5% for 5 min, 25% for 10 min, 50% for 10 min.

The judge: decide() is called at every minute on all looks so far, with step_end at the last
minute of each step, exactly as the endpoint would be called; fail aborts, inconclusive stops the
rollout (stuck), pass at the last step promotes. The old gate (formulas and chart defaults from
benchmarks/gate_simulation.py) sees, on the same simulated minutes, the last 5 minutes of each
step. "median canary tasks before abort": canary tasks up to the look that aborted.

Run: python benchmarks/gate_quality.py [--runs N] [--degraded-runs N] [--rates 50,200,1000]
     python benchmarks/gate_quality.py --sizing   (minutes of canary traffic a regression needs)
Needs numpy for the simulation (pip install numpy); the decision code is the judge's, pure Python.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_simulation import Gate, cost_z, rate_z, verdict  # noqa: E402

from kubectl_agentroll.judge import (  # noqa: E402
    COST_BUCKETS_USD,
    DEFAULT,
    Counts,
    Look,
    Plan,
    decide,
    tasks_needed,
)
from kubectl_agentroll.sequential import z_quantile  # noqa: E402
from kubectl_agentroll.twosample import wilson  # noqa: E402

PLAN = Plan.parse("5:5m,25:10m,50:10m", interval_s=60)
TOOL_CALLS = 3
LES = (*COST_BUCKETS_USD, math.inf)


@dataclass(frozen=True)
class Agent:
    hallucination: float = 0.05
    task_failure: float = 0.10
    tool_error: float = 0.03  # per call
    clustered: bool = False
    cost_mean: float = 0.02
    cost_cv: float = 1.0


@dataclass(frozen=True)
class Row:
    name: str
    stable: Agent
    canary: Agent
    healthy: bool


ROWS = (
    Row("healthy, cost cv 1", Agent(), Agent(), True),
    Row("healthy, cost cv 2", Agent(cost_cv=2.0), Agent(cost_cv=2.0), True),
    Row("healthy, tool errors clustered", Agent(clustered=True), Agent(clustered=True), True),
    Row("hallucination 5% -> 8%", Agent(), Agent(hallucination=0.08), False),
    Row("hallucination 5% -> 10%", Agent(), Agent(hallucination=0.10), False),
    Row("completion 90% -> 85%", Agent(), Agent(task_failure=0.15), False),
    Row("cost per task +25%", Agent(), Agent(cost_mean=0.025), False),
)


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2)) if math.isfinite(x) else (1.0 if x > 0 else 0.0)


def cost_bins(agent: Agent) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket probability, conditional mean and conditional variance of a lognormal cost."""
    s2 = math.log(1 + agent.cost_cv**2)
    s, mu = math.sqrt(s2), math.log(agent.cost_mean) - s2 / 2
    probs, means, variances, lo = [], [], [], 0.0
    for hi in LES:
        def part(k: int, a: float = lo, b: float = hi) -> float:  # E[X^k 1(a < X <= b)]
            za = (math.log(a) - mu - k * s2) / s if a > 0 else -math.inf
            zb = (math.log(b) - mu - k * s2) / s if math.isfinite(b) else math.inf
            return math.exp(k * mu + k * k * s2 / 2) * (_norm_cdf(zb) - _norm_cdf(za))
        p = part(0)
        m = part(1) / p if p > 0 else 0.0
        probs.append(p)
        means.append(m)
        variances.append(max(part(2) / p - m * m, 0.0) if p > 0 else 0.0)
        lo = hi
    probs_a = np.array(probs)
    return probs_a / probs_a.sum(), np.array(means), np.array(variances)


def tool_pmf(agent: Agent) -> tuple[np.ndarray, np.ndarray]:
    """(P(bad latent), pmf of errors per task for bad and good tasks) as a 2 x (k+1) array."""
    k = TOOL_CALLS
    if agent.clustered:
        q, e_bad = 0.1, 0.2
        e_good = (agent.tool_error - q * e_bad) / (1 - q)
    else:
        q, e_bad, e_good = 0.0, agent.tool_error, agent.tool_error
    pmf = np.array([[math.comb(k, j) * e**j * (1 - e) ** (k - j) for j in range(k + 1)]
                    for e in (e_bad, e_good)])
    return np.array(q), pmf


def simulate_side(rng: np.random.Generator, lam: np.ndarray, agent: Agent) -> dict[str, np.ndarray]:
    """Per-minute counts for one side, shape (runs, minutes)."""
    tasks = rng.poisson(lam)
    q, pmf = tool_pmf(agent)
    bad = rng.binomial(tasks, q)
    per_bad = rng.multinomial(bad, pmf[0])
    per_good = rng.multinomial(tasks - bad, pmf[1])
    counts_by_errors = per_bad + per_good  # (runs, minutes, k+1): tasks with j failed calls
    probs, means, variances = cost_bins(agent)
    buckets = rng.multinomial(tasks, probs)  # (runs, minutes, buckets)
    cost = buckets @ means + np.sqrt(buckets @ variances) * rng.standard_normal(tasks.shape)
    return {
        "tasks": tasks,
        "hallucinated": rng.binomial(tasks, agent.hallucination),
        "failed": rng.binomial(tasks, agent.task_failure),
        "tool_tasks": tasks - counts_by_errors[..., 0],
        "tool_errors": counts_by_errors @ np.arange(TOOL_CALLS + 1),
        "buckets": buckets,
        "cost": np.maximum(cost, 0.0),
    }


def minute_weights(plan: Plan) -> list[float]:
    return [plan.steps[plan.step_of(t)].weight for t in plan.grid]


def counts_at(side: dict[str, np.ndarray], r: int, m: int) -> Counts:
    """Cumulative Counts of run r through minute m (arrays already cumulated)."""
    b = np.cumsum(side["buckets"][r, m])  # Prometheus buckets count everything <= le
    return Counts(
        tasks=float(side["tasks"][r, m]), tasks_failed=float(side["failed"][r, m]),
        evaluations=float(side["tasks"][r, m]), hallucinated=float(side["hallucinated"][r, m]),
        tasks_with_tool_errors=float(side["tool_tasks"][r, m]),
        cost_buckets=tuple(zip(LES, (float(x) for x in b), strict=True)),
        cost_sum=float(side["cost"][r, m]),
    )


def run_judge(canary, stable, r: int, weights: list[float], step_end_minutes: set[int]) -> tuple[str, float]:
    looks: list[Look] = []
    for m, w in enumerate(weights):
        looks.append(Look((m + 1) * 60.0, counts_at(canary, r, m), counts_at(stable, r, m), w))
        v = decide(looks, PLAN, step_end=m in step_end_minutes)
        if v.decision == "fail":
            at = min(e.at_s for e in v.metrics if e.status == "fail")
            return "aborted", float(canary["tasks"][r, round(at / 60) - 1])
        if v.decision == "inconclusive":
            return "stuck", math.nan
    return "promoted", math.nan


def run_old(gate: Gate, canary, stable, r: int, step_end_minutes: list[int]) -> tuple[str, float]:
    """The old PromQL gate: at each step's end, a 5-minute window of increases."""
    for end in step_end_minutes:
        start = end - 5

        def window(side, key, end=end, start=start):
            return float(side[key][r, end] - (side[key][r, start] if start >= 0 else 0))

        nc, ns = window(canary, "tasks"), window(stable, "tasks")
        zs = [
            rate_z(window(canary, "hallucinated"), nc, window(stable, "hallucinated"), ns,
                   gate.hallucination_margin, gate.min_evaluations),
            rate_z(window(canary, "failed"), nc, window(stable, "failed"), ns, gate.task_failure_margin,
                   gate.min_tasks),
            rate_z(window(canary, "tool_errors"), nc * TOOL_CALLS, window(stable, "tool_errors"),
                   ns * TOOL_CALLS, gate.tool_error_margin, gate.min_tool_calls),
            cost_z(window(canary, "cost"), nc, window(stable, "cost"), ns, gate.cost_margin, gate.cost_cv,
                   gate.min_tasks),
        ]
        verdicts = [verdict(z, gate.z_critical) for z in zs]
        if "failed" in verdicts:
            return "aborted", float(canary["tasks"][r, end])
        if "inconclusive" in verdicts:
            return "stuck", math.nan
    return "promoted", math.nan


def cumulative_sides(row, rate: float, runs: int, seed: int) -> tuple[list, dict, dict]:
    """The plan's per-minute weights and, per side, cumulative per-minute counts of `runs` rollouts."""
    rng = np.random.default_rng(seed)
    weights = minute_weights(PLAN)
    w = np.array(weights) / 100
    canary = simulate_side(rng, np.broadcast_to(rate * w, (runs, len(w))), row.canary)
    stable = simulate_side(rng, np.broadcast_to(rate * (1 - w), (runs, len(w))), row.stable)
    for side in (canary, stable):
        for key, value in side.items():
            side[key] = np.cumsum(value, axis=1)
    return weights, canary, stable


def simulate_chunk(job: tuple[int, float, int, int]) -> dict[str, list]:
    row_index, rate, runs, seed = job
    row = ROWS[row_index]
    weights, canary, stable = cumulative_sides(row, rate, runs, seed)
    ends = [PLAN.grid.index(t) for t in PLAN.step_ends]
    gate = Gate.from_chart()
    out: dict[str, list] = {"judge": [], "old": []}
    for r in range(runs):
        out["judge"].append(run_judge(canary, stable, r, weights, set(ends)))
        out["old"].append(run_old(gate, canary, stable, r, ends))
    return out


def fmt_rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:6.1%} [{lo:.1%}, {hi:.1%}]"


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """The median and its distribution-free 95% interval: the order statistics of ranks
    n/2 -+ 1.96 sqrt(n)/2 (the binomial(n, 1/2) count of values below the true median)."""
    xs = sorted(values)
    n = len(xs)
    half = 1.959963984540054 * math.sqrt(n) / 2
    lo, hi = max(math.floor(n / 2 - half), 1), min(math.ceil(n / 2 + half) + 1, n)
    return statistics.median(xs), xs[lo - 1], xs[hi - 1]


def quality(args: argparse.Namespace) -> None:
    rates = [float(x) for x in args.rates.split(",")]
    jobs, keys = [], []
    chunk = 500
    for ri, row in enumerate(ROWS):
        if args.rows and ri not in args.rows:
            continue
        runs = args.runs if row.healthy else args.degraded_runs
        for rate in rates:
            for c in range(0, runs, chunk):
                # the seed depends on (row, rate, chunk) only: both gates see the same minutes
                seed = args.seed + 1_000_003 * ri + 7919 * int(rate) + c
                jobs.append((ri, rate, min(chunk, runs - c), seed))
                keys.append((ri, rate))
    started = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        results = pool.map(simulate_chunk, jobs, chunksize=1)
    merged: dict[tuple[int, float], dict[str, list]] = {}
    for key, res in zip(keys, results, strict=True):
        m = merged.setdefault(key, {"judge": [], "old": []})
        for gate in res:
            m[gate].extend(res[gate])
    print(f"plan {PLAN} (weight:seconds), a look every {PLAN.interval_s:g}s; judge alpha "
          f"{DEFAULT.alpha:g} split {', '.join(f'{m.name} {m.alpha:g}' for m in DEFAULT.metrics)}, "
          f"{DEFAULT.spending} spending; seed {args.seed}")
    print("| tasks/min | canary | gate | runs | aborted [95% CI] | promoted [95% CI] | stuck inconclusive "
          "[95% CI] | median canary tasks before abort [95% CI] |")
    print("|---|---|---|---|---|---|---|---|")
    for (ri, rate), m in sorted(merged.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for gate, label in (("judge", "judge"), ("old", "old PromQL")):
            outcomes = m[gate]
            n = len(outcomes)
            count = {k: sum(1 for o, _ in outcomes if o == k) for k in ("aborted", "promoted", "stuck")}
            exposure = [x for o, x in outcomes if o == "aborted"]
            med = "{:.0f} [{:.0f}, {:.0f}]".format(*median_interval(exposure)) if exposure else "-"
            print(f"| {rate:g} | {ROWS[ri].name} | {label} | {n} | {fmt_rate(count['aborted'], n)} | "
                  f"{fmt_rate(count['promoted'], n)} | {fmt_rate(count['stuck'], n)} | {med} |")
    print(f"({time.perf_counter() - started:.0f}s on {args.processes} processes)")


def sizing(args: argparse.Namespace) -> None:
    """Minutes at a constant weight until the judge's statistic reaches the final boundary of the
    default plan with the stated power: n_eff = rate * minutes * w * (1 - w)."""
    z_power = z_quantile(1 - args.power)
    specs = {m.name: m for m in DEFAULT.metrics}
    from dataclasses import replace

    from kubectl_agentroll.judge import _design  # the boundary the judge uses at the plan's end
    cases = (
        ("hallucination 5% -> 8%", "hallucination-rate", 0.05, 1.6),
        ("hallucination 5% -> 10%", "hallucination-rate", 0.05, 2.0),
        ("task failure 10% -> 15%", "task-failure-rate", 0.10, 1.5),
        ("tasks with tool errors 8.7% -> 13%", "tool-error-task-rate", 0.087, 1.5),
        ("cost per task +25% (cv 1)", "cost-per-task", math.sqrt(math.log(2)), 1.25),
        ("cost per task +25% (cv 2)", "cost-per-task", math.sqrt(math.log(5)), 1.25),
    )
    rates = [float(x) for x in args.rates.split(",")]
    weights = (5.0, 25.0, 50.0)
    cols = [f"{r:g}/min @ {w:g}%" for r in rates for w in weights]
    print(f"minutes of canary traffic for {args.power:.0%} power (judge's final boundary on plan {PLAN})")
    print("| regression | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, name, baseline, ratio in cases:
        spec = replace(specs[name], detect=ratio)
        bound = _design(PLAN, DEFAULT.spending, DEFAULT.shape, spec.alpha).bounds[-1]
        need = tasks_needed(spec, baseline, bound, z_power)
        cells = [f"{need / (r * w / 100 * (1 - w / 100)):.0f}" for r in rates for w in weights]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20000, help="rollouts per healthy row")
    parser.add_argument("--degraded-runs", type=int, default=4000, help="rollouts per degraded row")
    parser.add_argument("--rates", default="50,200,1000", help="tasks per minute, comma-separated")
    parser.add_argument("--rows", type=lambda s: {int(x) for x in s.split(",")}, default=None,
                        help="row indices to run (0-6), default all")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sizing", action="store_true", help="print the minutes-needed table instead")
    parser.add_argument("--power", type=float, default=0.95, help="power for --sizing")
    args = parser.parse_args()
    (sizing if args.sizing else quality)(args)


if __name__ == "__main__":
    main()
