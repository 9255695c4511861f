#!/usr/bin/env python3
"""Calibration of the canary judge's tests under H0: per metric, the realized false-abort rate over
the whole default plan against the α it was given.

The healthy rows of benchmarks/gate_quality.py (same simulation, same seeds), but decide() is
called once, at the plan's last look with every look, and without step ends, so no rollout stops
inconclusive: each metric's evidence says whether its statistic ever reached its boundary. That
is the size of each sequential test alone; the family-wise row is the share of rollouts where any
metric did. A realized rate well under α is error the design leaves unspent (lost power); over α
is a broken promise.

Run: python benchmarks/judge_calibration.py [--runs 20000] [--rates 50,200,1000] [--continuity 0.5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_quality import PLAN, ROWS, counts_at, cumulative_sides, fmt_rate  # noqa: E402

from kubectl_agentroll.judge import DEFAULT, JudgeConfig, Look, decide  # noqa: E402

HEALTHY = [i for i, row in enumerate(ROWS) if row.healthy]


def crossings(job: tuple[int, float, int, int, JudgeConfig]) -> list[tuple[str, ...]]:
    """Per run, the metrics whose statistic reached its boundary at some look of the plan."""
    row_index, rate, runs, seed, config = job
    weights, canary, stable = cumulative_sides(ROWS[row_index], rate, runs, seed)
    out = []
    for r in range(runs):
        looks = [Look((m + 1) * 60.0, counts_at(canary, r, m), counts_at(stable, r, m), wt)
                 for m, wt in enumerate(weights)]
        verdict = decide(looks, PLAN, config=config)
        out.append(tuple(e.metric for e in verdict.metrics if e.status == "fail"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20000, help="rollouts per row and rate")
    parser.add_argument("--rates", default="50,200,1000", help="tasks per minute, comma-separated")
    parser.add_argument("--continuity", type=float, default=DEFAULT.continuity,
                        help=f"events moved toward H0 (judge default {DEFAULT.continuity:g})")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    config = replace(DEFAULT, continuity=args.continuity)
    chunk, jobs, keys = 500, [], []
    for ri in HEALTHY:
        for rate in (float(x) for x in args.rates.split(",")):
            for c in range(0, args.runs, chunk):
                jobs.append((ri, rate, min(chunk, args.runs - c),
                             args.seed + 1_000_003 * ri + 7919 * int(rate) + c, config))
                keys.append((ri, rate))
    started = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        results = pool.map(crossings, jobs, chunksize=1)
    merged: dict[tuple[int, float], list] = {}
    for key, res in zip(keys, results, strict=True):
        merged.setdefault(key, []).extend(res)
    names = [m.name for m in config.metrics]
    print(f"plan {PLAN}, a look every {PLAN.interval_s:g}s, {config.spending} spending (shape "
          f"{config.shape:g}), continuity {config.continuity:g}; seed {args.seed}")
    print("| tasks/min | canary | runs | " + " | ".join(f"{n} (α {m.alpha:g})" for n, m in
                                                      zip(names, config.metrics, strict=True))
          + f" | any metric (Σα {config.alpha:g}) |")
    print("|---|---|---|" + "---|" * (len(names) + 1))
    for (ri, rate), outcomes in sorted(merged.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n = len(outcomes)
        cells = [fmt_rate(sum(name in o for o in outcomes), n).strip() for name in names]
        cells.append(fmt_rate(sum(bool(o) for o in outcomes), n).strip())
        print(f"| {rate:g} | {ROWS[ri].name} | {n} | " + " | ".join(cells) + " |")
    print(f"({time.perf_counter() - started:.0f}s on {args.processes} processes)")


if __name__ == "__main__":
    main()
