"""Group-sequential boundaries by error spending (Lan & DeMets), one-sided, pure Python.

A statistic Z_k = S_k / sqrt(I_k), with S a Brownian motion in information I (zero drift under the
null), is compared at looks k = 1..K with an upper boundary b_k. Given a spending function
alpha(tau), b_k is chosen so that P(Z_k >= b_k, Z_j < b_j for j < k) = alpha(tau_k) - alpha(tau_{k-1}):
the error spent at each look is exactly what the function allows, whatever the number and
spacing of looks. The probabilities come from the recursive numerical integration of Armitage,
McPherson & Rowe (1969), as in Jennison & Turnbull, "Group Sequential Methods", ch. 19.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

SPENDING_KINDS = ("pocock", "obf", "power", "hsd")
_N01 = NormalDist()
_LOW = -6.0
_STEP = 0.04
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def upper_tail(z: float) -> float:
    """P(N(0,1) >= z), accurate far into the tail (erfc, no cancellation)."""
    return 0.5 * math.erfc(z / _SQRT2)


def z_quantile(p: float) -> float:
    """The z with P(N(0,1) >= z) = p."""
    return -_N01.inv_cdf(p) if p > 1e-300 else math.inf


def spent(kind: str, alpha: float, tau: float, shape: float = 1.0) -> float:
    """Cumulative error allowed by information fraction tau (capped at 1).

    pocock: alpha ln(1 + (e - 1) tau); obf: the one-sided O'Brien-Fleming type
    2 - 2 Phi(z_{alpha/2} / sqrt(tau)); power: alpha tau^shape (Kim & DeMets); hsd: Hwang, Shih &
    DeCani, alpha (1 - exp(-shape tau)) / (1 - exp(-shape)).
    """
    tau = min(max(tau, 0.0), 1.0)
    if tau == 0.0:
        return 0.0
    if kind == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * tau)
    if kind == "obf":
        return min(alpha, 2.0 * upper_tail(z_quantile(alpha / 2.0) / math.sqrt(tau)))
    if kind == "power":
        return alpha * tau**shape
    if kind == "hsd":
        if shape == 0:
            return alpha * tau
        return alpha * math.expm1(-shape * tau) / math.expm1(-shape)
    raise ValueError(f"spending: unknown kind {kind!r} (expected one of {', '.join(SPENDING_KINDS)})")


def _simpson(lo: float, hi: float) -> tuple[list[float], list[float]]:
    """Grid points and Simpson weights on [lo, hi], spacing at most _STEP."""
    intervals = max(2, 2 * math.ceil((hi - lo) / (2 * _STEP)))
    h = (hi - lo) / intervals
    points = [lo + i * h for i in range(intervals + 1)]
    weights = [h / 3 * (1 if i in (0, intervals) else 4 if i % 2 else 2) for i in range(intervals + 1)]
    return points, weights


def _solve(target: float, crossing) -> float:
    """The b with crossing(b) = target; crossing decreases in b."""
    lo, hi = -3.0, 15.0
    if crossing(lo) <= target:
        return lo
    for _ in range(50):
        mid = (lo + hi) / 2
        if crossing(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


@lru_cache(maxsize=64)
def boundaries(info: tuple[float, ...], cumulative_alpha: tuple[float, ...]) -> tuple[float, ...]:
    """Upper boundaries b_1..b_K for strictly increasing information levels and the cumulative
    error to have spent by each look; math.inf where a look spends nothing."""
    if len(info) != len(cumulative_alpha) or not info:
        raise ValueError("boundaries: info and cumulative_alpha must be non-empty and of equal length")
    if any(b <= a for a, b in zip(info, info[1:], strict=False)) or info[0] <= 0:
        raise ValueError("boundaries: information must be positive and strictly increasing")
    result: list[float] = []
    b = z_quantile(cumulative_alpha[0]) if cumulative_alpha[0] > 0 else math.inf
    result.append(b)
    ys, ws = _simpson(_LOW, min(b, 10.0))
    density = [w * math.exp(-y * y / 2) * _INV_SQRT2PI for y, w in zip(ys, ws, strict=True)]
    for k in range(1, len(info)):
        a, c, d = math.sqrt(info[k - 1]), math.sqrt(info[k]), math.sqrt(info[k] - info[k - 1])
        shifted = [(y * a, f) for y, f in zip(ys, density, strict=True)]
        increment = cumulative_alpha[k] - cumulative_alpha[k - 1]

        def crossing(bk: float, shifted=shifted, c=c, d=d) -> float:
            return sum(f * upper_tail((bk * c - ya) / d) for ya, f in shifted)

        b = _solve(increment, crossing) if increment > 1e-15 else math.inf
        result.append(b)
        ys, ws = _simpson(_LOW, min(b, 10.0))
        scale = c / d * _INV_SQRT2PI
        density = []
        for z, w in zip(ys, ws, strict=True):
            zc = z * c
            total = 0.0
            for ya, f in shifted:
                u = (zc - ya) / d
                if -9.0 < u < 9.0:
                    total += f * math.exp(-u * u / 2)
            density.append(w * scale * total)
    return tuple(result)

