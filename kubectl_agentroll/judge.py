"""The canary judge: cumulative counts per look -> continue | fail | pass | inconclusive (pure).

Each metric is a one-sided group-sequential test of "the canary is worse than stable", looked at
on a fixed grid of planned looks (plan.py), with a boundary from error spending over the plan's
planned information (sequential.py), so the decision is a function of the looks alone: a repeated
look is the same look, a missing one is a test not made, and the boundaries never move. The rule,
its error split and what `pass` requires are in README.md, "The canary judge: decision rule".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from functools import lru_cache

from kubectl_agentroll.plan import Plan
from kubectl_agentroll.sequential import SPENDING_KINDS, boundaries, spent, upper_tail, z_quantile
from kubectl_agentroll.twosample import Z95, bin_counts, mann_whitney, newcombe, signed_root_lr, wilson

__all__ = ["COST_BUCKETS_USD", "DEFAULT", "Counts", "Estimate", "Evidence", "JudgeConfig", "Look",
           "MetricSpec", "Plan", "Verdict", "decide", "designs", "tasks_needed"]

# Upper bounds (USD) of the agentroll_task_cost_usd histogram: five per decade (R5 series),
# $0.001 to $10; +Inf is implied. Fine enough for a rank test of a 25% cost shift.
COST_BUCKETS_USD: tuple[float, ...] = tuple(
    round(m * 10.0**e, 6) for e in range(-3, 1) for m in (1.0, 1.6, 2.5, 4.0, 6.3)
) + (10.0,)

_COUNT_FIELDS = ("tasks", "tasks_failed", "evaluations", "hallucinated", "tasks_with_tool_errors", "cost_sum")


@dataclass(frozen=True)
class Counts:
    """One side's increases since the canary began (floats: Prometheus increase() extrapolates)."""

    tasks: float = 0.0
    tasks_failed: float = 0.0
    evaluations: float = 0.0
    hallucinated: float = 0.0
    tasks_with_tool_errors: float = 0.0
    cost_buckets: tuple[tuple[float, float], ...] = ()  # (le, cumulative count), +Inf last
    cost_sum: float = 0.0

    def __post_init__(self) -> None:
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        les = [le for le, _ in self.cost_buckets]
        if les and (les[-1] != math.inf or any(b <= a for a, b in zip(les, les[1:], strict=False))):
            raise ValueError("cost_buckets: upper bounds must increase strictly and end with +Inf")
        for le, count in self.cost_buckets:
            if not (math.isfinite(count) and count >= 0):
                raise ValueError(f"cost_buckets: count of le={le:g} must be a finite number >= 0, "
                                 f"got {count!r}")

    @property
    def cost_count(self) -> float:
        return self.cost_buckets[-1][1] if self.cost_buckets else 0.0


@dataclass(frozen=True)
class Look:
    at_s: float  # seconds since the canary began
    canary: Counts
    stable: Counts
    canary_weight: float  # percent of traffic Argo set for the canary at this look

    def __hash__(self) -> int:  # looks are memo keys; hash the nested tuples once
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.at_s, self.canary, self.stable, self.canary_weight))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __post_init__(self) -> None:
        if not (math.isfinite(self.at_s) and self.at_s > 0):
            raise ValueError(f"at_s: must be a number of seconds > 0, got {self.at_s!r}")
        if not (math.isfinite(self.canary_weight) and 0 <= self.canary_weight <= 100):
            raise ValueError(f"canary_weight: must be a percentage 0..100, got {self.canary_weight!r}")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str  # plain words, for reasons
    bad: str  # Counts field of bad events ("" for cost)
    total: str  # Counts field (or property) of the denominator
    alpha: float  # this metric's share of the family-wise false-abort rate
    detect: float  # regression to detect by the end of the plan: rate ratio, or mean-cost ratio
    detect_points: float = 0.0  # rates: or this absolute rise, if larger (rare events)

    @property
    def is_cost(self) -> bool:
        return not self.bad


# The family-wise false-abort rate is the sum of the alphas (Bonferroni: 0.05). Hallucination, the
# regression no other dashboard shows, gets 0.04; the three guard rails share 0.01.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("hallucination-rate", "hallucination rate", "hallucinated", "evaluations", 0.04, 1.6, 0.02),
    MetricSpec("task-failure-rate", "task failure rate", "tasks_failed", "tasks", 0.004, 1.5, 0.03),
    MetricSpec("tool-error-task-rate", "share of tasks with a failed tool call",
               "tasks_with_tool_errors", "tasks", 0.003, 1.75, 0.03),
    MetricSpec("cost-per-task", "cost per task", "", "cost_count", 0.003, 1.25),
)


@dataclass(frozen=True)
class JudgeConfig:
    metrics: tuple[MetricSpec, ...] = METRICS
    spending: str = "hsd"
    shape: float = 2.0  # gamma of "hsd", exponent of "power" (sequential.spent)
    # Mid-p: no continuity correction. Half an event keeps every fixed-sample tail under its level
    # but left a third of the error unspent over the plan (benchmarks/judge_calibration.py).
    continuity: float = 0.0
    power: float = 0.8  # pass needs the information to detect each metric's `detect` with this power
    srm_p: float = 1e-4  # sample-ratio mismatch: p-value below which the split is suspect ...
    srm_tolerance: float = 0.25  # ... and observed/expected canary share off by more than this
    missing_min_expected: float = 10.0  # a side with 0 of a series where this many were expected

    def __post_init__(self) -> None:
        if self.spending not in SPENDING_KINDS:
            raise ValueError(f"spending: {self.spending!r} is not one of {', '.join(SPENDING_KINDS)}")
        total = sum(m.alpha for m in self.metrics)
        if not self.metrics or not all(0 < m.alpha < 1 for m in self.metrics) or total >= 0.5:
            raise ValueError(f"metrics: each alpha must be in (0, 1) and their sum < 0.5, got {total:g}")
        if not 0.5 <= self.power < 1:
            raise ValueError(f"power: must be in [0.5, 1), got {self.power!r}")

    @property
    def alpha(self) -> float:
        return sum(m.alpha for m in self.metrics)


DEFAULT = JudgeConfig()


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Evidence:
    metric: str
    status: str  # "fail" | "ok" | "needs-data" | "fault"
    at_s: float  # the look this evidence is from (the crossing look for "fail")
    n_canary: float
    n_stable: float
    bad_canary: float | None
    bad_stable: float | None
    canary: Estimate  # rate, or mean cost per task (USD)
    stable: Estimate
    difference: Estimate  # canary - stable for rates; canary / stable - 1 for cost
    statistic: float  # signed-root likelihood ratio, or Mann-Whitney z for cost
    boundary: float  # the statistic fails the canary at or above this (inf: no error spent yet)
    information_fraction: float  # information in / information a pass at the plan's end needs
    alpha: float
    alpha_spent: float
    reason: str


@dataclass(frozen=True)
class Verdict:
    decision: str  # "continue" | "fail" | "pass" | "inconclusive"
    reason: str
    at_s: float
    metrics: tuple[Evidence, ...] = ()
    minutes_needed: float | None = None
    canary_share: float | None = None  # observed canary share of tasks in the current step

    def to_dict(self) -> dict:
        """JSON-ready; Argo's web provider reads `decision`. Infinite and NaN numbers become null."""
        return _jsonable({
            "decision": self.decision,
            "reason": self.reason,
            "at_s": self.at_s,
            "minutes_needed": self.minutes_needed,
            "canary_share": self.canary_share,
            "metrics": {e.metric: _evidence_dict(e) for e in self.metrics},
        })


def _evidence_dict(e: Evidence) -> dict:
    d = {k: getattr(e, k) for k in e.__dataclass_fields__ if k != "metric"}
    for k in ("canary", "stable", "difference"):
        est = d[k]
        d[k] = {"value": est.value, "low": est.low, "high": est.high}
    return d


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --- one metric at one look ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Stat:
    z: float
    nc: float
    ns: float
    bad_c: float | None
    bad_s: float | None
    canary: Estimate
    stable: Estimate
    difference: Estimate
    n_eff: float
    required: float  # effective sample size a pass at the plan's end needs
    superiority: float | None = None  # cost: P(canary task costs more) + P(tie) / 2


def _total(counts: Counts, spec: MetricSpec) -> float:
    return getattr(counts, spec.total)


@lru_cache(maxsize=32)
def _log_middles(les: tuple[float, ...]) -> tuple[tuple[float, ...], float] | None:
    """Geometric middle (as a log) of each bin, +Inf and the first bin one bin-ratio wide; and
    half the log of that ratio (the floor of the sd)."""
    finite = [le for le in les if math.isfinite(le)]
    if len(finite) < 2 or finite[0] <= 0:
        return None
    ratio = finite[1] / finite[0]
    mids, lower = [], finite[0] / ratio
    for le in les:
        upper = le if math.isfinite(le) else lower * ratio
        mids.append(0.5 * (math.log(lower) + math.log(upper)))
        lower = upper
    return tuple(mids), 0.5 * math.log(ratio)


def _log_cost_sd(buckets: tuple[tuple[float, float], ...]) -> float:
    """sd of log cost from a histogram, each bin at its geometric middle (floor: half a bin)."""
    design = _log_middles(tuple(le for le, _ in buckets))
    if design is None:
        return 1.0
    mids, floor = design
    n = total = squares = previous = 0.0
    for (_, cumulative), m in zip(buckets, mids, strict=True):
        count = cumulative - previous
        if count > 0:
            n += count
            total += count * m
            squares += count * m * m
            previous = cumulative
    if n <= 1:
        return 1.0
    var = (squares - total * total / n) / (n - 1)
    return max(math.sqrt(max(var, 0.0)), floor)


def _mean_cost(counts: Counts, log_sd: float) -> Estimate:
    """Mean cost per task; its interval takes the cv of a lognormal with the histogram's log sd."""
    n = counts.cost_count
    if n <= 0:
        return Estimate(math.nan, math.nan, math.nan)
    mean = counts.cost_sum / n
    half = Z95 * mean * math.sqrt(math.expm1(log_sd**2) / n)
    return Estimate(mean, max(mean - half, 0.0), mean + half)


def tasks_needed(spec: MetricSpec, baseline: float, boundary: float, z_power: float) -> float:
    """Effective sample size 1 / (1/n_canary + 1/n_stable) at which the statistic's mean under the
    regression spec.detect reaches boundary + z_power (so it crosses with that power).

    baseline: stable's bad-event rate for a rate (the regression: the larger of detect x baseline
    and baseline + detect_points); for cost the sd of log cost (the regression is then a shift of
    log cost by ln(detect), i.e. P(canary > stable) = Phi(ln(detect) / (sd sqrt 2)))."""
    if spec.is_cost:
        effect = 0.5 - upper_tail(math.log(spec.detect) / (baseline * math.sqrt(2)))
        return ((boundary + z_power) / effect) ** 2 / 12.0
    delta = min(max(baseline * spec.detect, baseline + spec.detect_points), 0.999) - baseline
    return baseline * (1 - baseline) * ((boundary + z_power) / delta) ** 2


@lru_cache(maxsize=65536)
def _statistic(look: Look, spec: MetricSpec, continuity: float) -> tuple[float, float]:
    """(statistic, P(canary costs more) for cost or nan): all the boundary scan needs, memoised
    because every call re-reads the whole history."""
    c, s = look.canary, look.stable
    if spec.is_cost:
        if c.cost_buckets and s.cost_buckets and len(c.cost_buckets) == len(s.cost_buckets):
            return mann_whitney(bin_counts([v for _, v in c.cost_buckets]),
                                bin_counts([v for _, v in s.cost_buckets]), continuity)
        return 0.0, 0.5
    nc, ns = _total(c, spec), _total(s, spec)
    xc, xs = min(getattr(c, spec.bad), nc), min(getattr(s, spec.bad), ns)
    return signed_root_lr(xc, nc, xs, ns, continuity), math.nan


def _stat(look: Look, spec: MetricSpec, continuity: float, final_boundary: float, z_power: float) -> _Stat:
    c, s = look.canary, look.stable
    nc, ns = _total(c, spec), _total(s, spec)
    n_eff = 1.0 / (1.0 / nc + 1.0 / ns) if nc > 0 and ns > 0 else 0.0
    z, theta = _statistic(look, spec, continuity)
    if spec.is_cost:
        sd_s = _log_cost_sd(s.cost_buckets)
        mc, ms = _mean_cost(c, _log_cost_sd(c.cost_buckets)), _mean_cost(s, sd_s)
        if nc > 0 and ns > 0 and ms.value > 0 and mc.value > 0:
            ratio = mc.value / ms.value
            half = math.hypot((mc.high - mc.value) / mc.value, (ms.high - ms.value) / ms.value)
            half = min(half, 50.0)  # a fraction of a task on a side: the interval is everything
            diff = Estimate(ratio - 1, ratio * math.exp(-half) - 1, ratio * math.exp(half) - 1)
        else:
            diff = Estimate(math.nan, math.nan, math.nan)
        required = tasks_needed(spec, sd_s, final_boundary, z_power) if ns > 0 else math.inf
        return _Stat(z, nc, ns, None, None, mc, ms, diff, n_eff, required, theta)
    xc, xs = min(getattr(c, spec.bad), nc), min(getattr(s, spec.bad), ns)
    pc, ps = (xc / nc if nc > 0 else math.nan), (xs / ns if ns > 0 else math.nan)
    canary, stable = Estimate(pc, *wilson(xc, nc)), Estimate(ps, *wilson(xs, ns))
    diff = Estimate(pc - ps, *newcombe(xc, nc, xs, ns)) if nc > 0 and ns > 0 else \
        Estimate(math.nan, math.nan, math.nan)
    required = tasks_needed(spec, (xs + 0.5) / (ns + 1.0), final_boundary, z_power) if ns > 0 else math.inf
    return _Stat(z, nc, ns, xc, xs, canary, stable, diff, n_eff, required)


# --- the design: boundaries on the plan's grid --------------------------------------------------

@dataclass(frozen=True)
class _Design:
    taus: tuple[float, ...]
    spent: tuple[float, ...]
    bounds: tuple[float, ...]

    def at(self, slot: int) -> tuple[float, float, float]:
        """(information fraction, error spent, boundary) at a slot; past the plan, the last ones."""
        i = min(slot, len(self.taus) - 1)
        return self.taus[i], self.spent[i], self.bounds[i]


@lru_cache(maxsize=256)
def _design(plan: Plan, spending: str, shape: float, alpha: float) -> _Design:
    grid = plan.grid
    info = tuple(plan.information(t) for t in grid)
    taus = tuple(i / info[-1] for i in info)
    cumulative = tuple(spent(spending, alpha, t, shape) for t in taus)
    return _Design(taus, cumulative, boundaries(info, cumulative))


def designs(plan: Plan, config: JudgeConfig = DEFAULT) -> dict[str, _Design]:
    """Each metric's boundaries on the plan: a second or more of numerical integration the first
    time (per plan, spending and alpha), a cache hit after that. A server warms its usual plans."""
    return {spec.name: _design(plan, config.spending, config.shape, spec.alpha) for spec in config.metrics}


# --- data quality -------------------------------------------------------------------------------

def _srm(looks: Sequence[Look]) -> tuple[float | None, float | None]:
    """Sample-ratio mismatch in the current step: G statistic of the canary share of tasks since
    the second look at the current weight against that weight. The weight is the plan's, and the
    controller's real step changes come a little later than planned (each step waits for its pods
    and its analysis), so the interval of the switch and the one after it may mix both weights.
    Returns (G or None, observed share or None)."""
    latest = looks[-1]
    same = []
    for look in reversed(looks):
        if look.canary_weight != latest.canary_weight:
            break
        same.append(look)
    if len(same) < 3:
        return None, None
    first = same[-2]
    dc = latest.canary.tasks - first.canary.tasks
    ds = latest.stable.tasks - first.stable.tasks
    n = dc + ds
    w = latest.canary_weight / 100
    if n <= 0 or dc < 0 or ds < 0:
        return None, None
    share = dc / n
    if not 0 < w < 1:
        return None, share
    return 2 * sum(o * math.log(o / e) for o, e in ((dc, n * w), (ds, n * (1 - w))) if o > 0), share


def _faults(looks: Sequence[Look], config: JudgeConfig, plan: Plan) -> tuple[list[str], float | None]:
    latest = looks[-1]
    c, s, w = latest.canary, latest.stable, latest.canary_weight / 100
    faults = []
    minimum = config.missing_min_expected
    if 0 < w < 1:
        if c.tasks == 0 and s.tasks * w / (1 - w) >= minimum:
            faults.append(f"no canary tasks where {s.tasks * w / (1 - w):.0f} were expected at "
                          f"{latest.canary_weight:g}% (agentroll_tasks_total missing for the canary?)")
        if s.tasks == 0 and c.tasks * (1 - w) / w >= minimum:
            faults.append(f"no stable tasks where {c.tasks * (1 - w) / w:.0f} were expected "
                          f"(agentroll_tasks_total missing for stable?)")
    for spec in config.metrics:
        if spec.total == "tasks":
            continue
        for side, this, other in (("canary", c, s), ("stable", s, c)):
            if _total(this, spec) == 0 and other.tasks > 0 and this.tasks > 0:
                expected = this.tasks * _total(other, spec) / other.tasks
                if expected >= minimum:
                    faults.append(f"{spec.label}: no {spec.total.replace('_', ' ')} on the {side} where "
                                  f"{expected:.0f} were expected (series missing?)")
        if spec.is_cost and c.cost_buckets and s.cost_buckets and \
                [le for le, _ in c.cost_buckets] != [le for le, _ in s.cost_buckets]:
            faults.append("cost per task: canary and stable histograms have different buckets")
    g, share = _srm(looks)
    if g is not None and share is not None and 0 < w < 1:
        p = math.erfc(math.sqrt(max(g, 0.0) / 2))
        # The plan's clock starts when the canary's first series is seen, a little after the
        # controller's: in the last interval before a planned switch the controller may already run
        # the next weight, so a share between the two is no fault there.
        step = plan.step_of(latest.at_s)
        near_switch = plan.step_ends[step] - latest.at_s <= plan.interval_s + 1e-6
        following = plan.steps[step + 1].weight / 100 if near_switch and step + 1 < len(plan.steps) else w
        low, high = min(w, following), max(w, following)
        tolerance = config.srm_tolerance
        if p < config.srm_p and not low * (1 - tolerance) <= share <= high * (1 + tolerance):
            faults.append(f"sample-ratio mismatch: the canary got {share:.1%} of tasks in this step, "
                          f"the weight is {latest.canary_weight:g}% (p = {p:.1g})")
    return faults, share


# --- decide -------------------------------------------------------------------------------------

def _dedupe(looks: Sequence[Look], plan: Plan) -> list[tuple[int, Look]]:
    """One look per planned slot (the nearest to it; ties by content), in time order."""
    grid = plan.grid
    best: dict[int, tuple[tuple, Look]] = {}
    for look in looks:
        slot = plan.slot(look.at_s)
        planned = grid[slot] if slot < len(grid) else grid[-1] + (slot - len(grid) + 1) * plan.interval_s
        key = (-abs(look.at_s - planned), look.at_s)
        held = best.get(slot)
        if held is None or key > held[0] or (key == held[0] and _order(look) > _order(held[1])):
            best[slot] = (key, look)
    return [(slot, best[slot][1]) for slot in sorted(best)]


def _order(look: Look) -> tuple:
    """A total order on looks at the same time (two reads of one moment that disagree)."""
    return (look.canary_weight, *(astuple(look.canary)), *(astuple(look.stable)))


def _projection(looks: Sequence[Look], spec: MetricSpec, rest: tuple[float, float]):
    """Effective sample size at the plan's end if the current step ran m more minutes, at the
    current step's rates, and the remaining steps (rest: their canary and stable exposure in
    weight-minutes) brought the same total rate; None without traffic on a side."""
    latest = looks[-1]
    base = next((lk for lk in reversed(looks) if lk.canary_weight != latest.canary_weight), None)
    span = latest.at_s - (base.at_s if base else 0.0)
    nc, ns = _total(latest.canary, spec), _total(latest.stable, spec)
    rc = (nc - (_total(base.canary, spec) if base else 0.0)) / span * 60
    rs = (ns - (_total(base.stable, spec) if base else 0.0)) / span * 60
    if rc <= 0 or rs <= 0:
        return None
    later_c, later_s = (rc + rs) * rest[0], (rc + rs) * rest[1]

    def n_eff(m: float) -> float:
        return 1.0 / (1.0 / (nc + rc * m + later_c) + 1.0 / (ns + rs * m + later_s))

    return n_eff


def _minutes_needed(n_eff, need: float) -> float | None:
    """Smallest m with n_eff(m) >= need (None if beyond ten million minutes)."""
    hi = 1.0
    while n_eff(hi) < need:
        hi *= 2
        if hi > 1e7:
            return None
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if n_eff(mid) < need else (lo, mid)
    return hi


def _fmt_rate(e: Estimate) -> str:
    return f"{e.value:.1%} [{e.low:.1%}, {e.high:.1%}]" if math.isfinite(e.value) else "n/a"


def _fmt_cost(e: Estimate) -> str:
    return f"${e.value:.4f} [{e.low:.4f}, {e.high:.4f}]" if math.isfinite(e.value) else "n/a"


def _reason(spec: MetricSpec, st: _Stat) -> str:
    if spec.is_cost:
        return (f"{spec.label}: canary {_fmt_cost(st.canary)} vs stable {_fmt_cost(st.stable)}, "
                f"P(canary task costs more) {st.superiority:.3f}")
    return f"{spec.label}: canary {_fmt_rate(st.canary)} vs stable {_fmt_rate(st.stable)}"


def _evidence(spec: MetricSpec, status: str, at_s: float, st: _Stat, bound: float,
              alpha_spent: float, reason: str) -> Evidence:
    frac = st.n_eff / st.required if st.required > 0 and math.isfinite(st.required) else 0.0
    return Evidence(spec.name, status, at_s, st.nc, st.ns, st.bad_c, st.bad_s, st.canary, st.stable,
                    st.difference, st.z, bound, frac, spec.alpha, alpha_spent, reason)


def decide(looks: Sequence[Look], plan: Plan, *, step_end: bool = False,
           config: JudgeConfig = DEFAULT) -> Verdict:
    """The verdict after the latest of `looks` (cumulative counts since the canary began).

    fail: some metric's statistic reached its boundary at some look; inconclusive: a data-quality
    fault at the latest look, or (step_end) not enough information to pass this step; pass (only
    with step_end): none of these; continue: otherwise."""
    if not looks:
        raise ValueError("looks: need at least one look")
    ordered = _dedupe(looks, plan)
    history = [lk for _, lk in ordered]
    last_slot, latest = ordered[-1]
    z_power = z_quantile(1 - config.power)
    by_metric = designs(plan, config)

    evidence: list[Evidence] = []
    failures: list[tuple[float, int, str]] = []
    for index, spec in enumerate(config.metrics):
        design = by_metric[spec.name]
        final_bound = design.bounds[-1]
        crossed = None
        bounds, last = design.bounds, len(design.bounds) - 1
        for slot, look in ordered:
            bound = bounds[slot if slot < last else last]
            if bound != math.inf and _statistic(look, spec, config.continuity)[0] >= bound:
                crossed = (slot, look)
                break
        if crossed:
            slot, look = crossed
            st = _stat(look, spec, config.continuity, final_bound, z_power)
            _, spent_here, bound = design.at(slot)
            reason = (f"{_reason(spec, st)}; statistic {st.z:.2f} >= boundary {bound:.2f} "
                      f"at minute {look.at_s / 60:.3g}")
            evidence.append(_evidence(spec, "fail", look.at_s, st, bound, spent_here, reason))
            failures.append((look.at_s, index, reason))
            continue
        st = _stat(latest, spec, config.continuity, final_bound, z_power)
        _, spent_here, bound = design.at(last_slot)
        reason = f"{_reason(spec, st)}; statistic {st.z:.2f} < boundary {bound:.2f}"
        evidence.append(_evidence(spec, "ok", latest.at_s, st, bound, spent_here, reason))

    faults, share = _faults(history, config, plan)
    if failures:
        failures.sort()
        more = f" (and {len(failures) - 1} more metric(s))" if len(failures) > 1 else ""
        return Verdict("fail", failures[0][2] + more, latest.at_s, tuple(evidence), None, share)
    if faults:
        evidence = [_replace_status(e, "fault") for e in evidence]
        return Verdict("inconclusive", "; ".join(faults), latest.at_s, tuple(evidence), None, share)
    if not step_end:
        return Verdict("continue", "no metric has crossed its boundary", latest.at_s, tuple(evidence),
                       None, share)

    step = plan.step_of(plan.grid[min(last_slot, len(plan.grid) - 1)])
    later = plan.steps[step + 1:] if last_slot < len(plan.grid) - 1 else ()
    rest = (sum(s.weight / 100 * s.duration_s for s in later) / 60,
            sum((1 - s.weight / 100) * s.duration_s for s in later) / 60)
    short: list[tuple[float, str]] = []
    final = []
    for spec, e in zip(config.metrics, evidence, strict=True):
        st = _stat(latest, spec, config.continuity, by_metric[spec.name].bounds[-1], z_power)
        projection = _projection(history, spec, rest)
        projected = projection(0.0) if projection else 0.0
        if math.isfinite(st.required) and projected >= st.required:
            final.append(e)
            continue
        minutes = _minutes_needed(projection, st.required) if projection and math.isfinite(st.required) \
            else None
        text = (f"{spec.label}: the plan would gather {projected / st.required:.0%} of the information "
                f"needed to detect a x{spec.detect:g} regression with {config.power:.0%} power"
                + (f"; about {math.ceil(minutes)} more minutes at the current traffic" if minutes else
                   f"; no {spec.total.replace('_', ' ')} on one side in this step"))
        short.append((minutes if minutes is not None else math.inf, text))
        final.append(_replace_status(e, "needs-data", text))
    if not short:
        return Verdict("pass", f"no regression detected; step {step + 1} of {len(plan.steps)} passes with "
                       "enough information in or on its way", latest.at_s, tuple(final), None, share)
    worst = max(m for m, _ in short)
    return Verdict("inconclusive", "; ".join(t for _, t in short), latest.at_s, tuple(final),
                   None if math.isinf(worst) else math.ceil(worst), share)


def _replace_status(e: Evidence, status: str, reason: str | None = None) -> Evidence:
    return replace(e, status=status, reason=reason or e.reason)
