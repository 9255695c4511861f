"""Two-sample statistics on counts (pure): binomial likelihood ratio, Wilson and Newcombe intervals,
and the Mann-Whitney test on binned data. All take floats, since Prometheus' increase() does not
give integers."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x <= 0.0 else x * math.log(y)


def _loglik(x: float, n: float, p: float) -> float:
    return _xlogy(x, p) + _xlogy(n - x, 1.0 - p)


def signed_root_lr(xc: float, nc: float, xs: float, ns: float, continuity: float = 0.5) -> float:
    """Signed root of the likelihood-ratio statistic for p_c = p_s, positive when the canary's rate
    is the higher. The canary's count is first moved `continuity` events toward the stable rate
    (never past it), which keeps every fixed-sample upper tail at or under its nominal level at
    small counts, where the uncorrected statistic runs about twice too often past 2.5. The judge
    passes 0 (mid-p): over a sequential plan the half event leaves much of the error unspent."""
    if nc <= 0.0 or ns <= 0.0:
        return 0.0
    xc, xs = min(max(xc, 0.0), nc), min(max(xs, 0.0), ns)
    ps = xs / ns
    target = nc * ps
    xc = max(target, xc - continuity) if xc > target else min(target, xc + continuity)
    pc = xc / nc
    pooled = (xc + xs) / (nc + ns)
    g = 2.0 * (_loglik(xc, nc, pc) + _loglik(xs, ns, ps) - _loglik(xc, nc, pooled) - _loglik(xs, ns, pooled))
    r = math.sqrt(max(g, 0.0))
    return r if pc > ps else -r if pc < ps else 0.0


def wilson(x: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) without data (or a vanishing amount)."""
    if n <= 1e-9:
        return 0.0, 1.0
    p = min(max(x / n, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(xc: float, nc: float, xs: float, ns: float, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p_c - p_s (method 10), from the Wilson intervals."""
    pc = xc / nc if nc > 0 else 0.0
    ps = xs / ns if ns > 0 else 0.0
    lc, uc = wilson(xc, nc, z)
    ls, us = wilson(xs, ns, z)
    d = pc - ps
    return d - math.hypot(pc - lc, us - ps), d + math.hypot(uc - pc, ps - ls)


def bin_counts(cumulative: Sequence[float]) -> list[float]:
    """Per-bin counts from cumulative histogram counts; increase() can make them slightly
    non-monotone, so negative differences count as 0."""
    counts, previous = [], 0.0
    for value in cumulative:
        counts.append(max(value - previous, 0.0))
        previous = max(previous, value)
    return counts


def mann_whitney(canary: Sequence[float], stable: Sequence[float],
                 continuity: float = 0.5) -> tuple[float, float]:
    """Mann-Whitney on grouped data: per-bin counts of the same bins on both sides, ordered.

    Returns (z, theta): theta = P(canary > stable) + P(tie) / 2, and z its standardised distance
    from 1/2 under the null (same distribution), with the tie-corrected variance
    nc ns / 12 (N + 1 - sum(t^3 - t) / (N (N - 1))); positive when the canary is larger."""
    nc, ns = sum(canary), sum(stable)
    if nc <= 0.0 or ns <= 0.0:
        return 0.0, 0.5
    n = nc + ns
    u, below, ties = 0.0, 0.0, 0.0
    for c, s in zip(canary, stable, strict=True):
        u += c * (below + s / 2.0)
        below += s
        t = c + s
        ties += t * t * t - t
    theta = u / (nc * ns)
    variance = nc * ns / 12.0 * (n + 1.0 - (ties / (n * (n - 1.0)) if n > 1.0 else 0.0))
    if variance <= 0.0:
        return 0.0, theta
    excess = u - nc * ns / 2.0
    excess = max(abs(excess) - continuity, 0.0) * (1 if excess >= 0 else -1)
    return excess / math.sqrt(variance), theta
