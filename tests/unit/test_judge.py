"""The canary judge: statistics, boundaries, plan parsing and decide() (kubectl_agentroll/judge.py)."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_agentroll.judge import COST_BUCKETS_USD, DEFAULT, Counts, Look, Plan, _design, decide
from kubectl_agentroll.sequential import boundaries, spent, upper_tail, z_quantile
from kubectl_agentroll.twosample import mann_whitney, signed_root_lr

PLAN = Plan.parse("5:300,25:600,50:600", interval_s=60)
LES = (*COST_BUCKETS_USD, math.inf)
SEVERITY = {"continue": 0, "pass": 0, "inconclusive": 1, "fail": 2}


def cost_buckets(n: float, shift: int = 0) -> tuple[tuple[float, float], ...]:
    """n tasks spread over bins 8..12 (about $0.025 to $0.16), moved `shift` bins up."""
    per_bin = [0.0] * len(LES)
    for i in range(8, 13):
        per_bin[min(i + shift, len(LES) - 1)] += n / 5
    cumulative, total = [], 0.0
    for c in per_bin:
        total += c
        cumulative.append(total)
    return tuple(zip(LES, cumulative, strict=True))


def side(tasks: float, hallucination: float = 0.05, failure: float = 0.10, tool: float = 0.08,
         shift: int = 0) -> Counts:
    return Counts(tasks=tasks, tasks_failed=tasks * failure, evaluations=tasks,
                  hallucinated=tasks * hallucination, tasks_with_tool_errors=tasks * tool,
                  cost_buckets=cost_buckets(tasks, shift), cost_sum=tasks * 0.05 * 1.6**shift)


def steady_looks(rate: float, minutes: int, **canary) -> list[Look]:
    """Looks of the default plan at their expected counts: canary and stable alike unless told."""
    looks, c, s = [], 0.0, 0.0
    for m in range(1, minutes + 1):
        w = PLAN.steps[PLAN.step_of(m * 60.0)].weight
        c += rate * w / 100
        s += rate * (1 - w / 100)
        looks.append(Look(m * 60.0, side(c, **canary), side(s), w))
    return looks


# --- statistics ---------------------------------------------------------------------------------

def _binomial_pmf(n: int, p: float) -> list[float]:
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def test_likelihood_ratio_upper_tail_holds_its_level_at_small_counts():
    """Exact enumeration, stable rate known: P(statistic >= z) <= P(N(0,1) >= z). Without the
    continuity correction this runs up to 5x over (n = 5, p = 0.5, z = 2.5)."""
    worst = 0.0
    for n in (5, 10, 20, 50, 100, 200):
        for p in (0.01, 0.03, 0.05, 0.1, 0.2, 0.5):
            pmf = _binomial_pmf(n, p)
            for z in (2.0, 2.5, 3.0, 3.5):
                tail = sum(q for k, q in enumerate(pmf) if signed_root_lr(k, n, p * 1e6, 1e6) >= z)
                worst = max(worst, tail / upper_tail(z))
    assert worst <= 1.0


def test_likelihood_ratio_value_sign_and_zero():
    def ll(x, n, p):
        return x * math.log(p) + (n - x) * math.log(1 - p)
    g = 2 * (ll(10, 100, 0.1) + ll(50, 1000, 0.05) - ll(10, 100, 60 / 1100) - ll(50, 1000, 60 / 1100))
    assert signed_root_lr(10, 100, 50, 1000, continuity=0) == pytest.approx(math.sqrt(g))
    assert 0 < signed_root_lr(10, 100, 50, 1000) < math.sqrt(g)
    assert signed_root_lr(2, 100, 50, 1000) < 0
    assert signed_root_lr(5, 100, 50, 1000) == 0.0
    assert signed_root_lr(0, 0, 0, 0) == 0.0


def test_mann_whitney_direction_ties_and_degenerate():
    same = [0, 10, 20, 10, 0]
    assert mann_whitney(same, same) == (0.0, 0.5)
    z, theta = mann_whitney([0, 0, 10, 20, 10], [10, 20, 10, 0, 0])
    assert z > 3 and theta > 0.8
    assert mann_whitney([0, 5, 0], [0, 7, 0]) == (0.0, 0.5)  # all tied: no variance, no crash
    assert mann_whitney([0, 0, 0], [1, 2, 3]) == (0.0, 0.5)


def _null_crossing_rate(rate: int, runs: int, seed: int) -> float:
    """Share of healthy rollouts (both sides 5% hallucination, steady arrivals on the default plan)
    whose hallucination statistic reaches the judge's boundary at some look, as decide() holds it."""
    spec = DEFAULT.metrics[0]
    bounds = _design(PLAN, DEFAULT.spending, DEFAULT.shape, spec.alpha).bounds
    cdfs: dict[int, list[float]] = {}

    def draw(n: int) -> int:  # binomial(n, 0.05) by inverting its cdf
        cdf = cdfs.get(n)
        if cdf is None:
            cdf = cdfs[n] = list(itertools.accumulate(_binomial_pmf(n, 0.05)))
        return min(bisect.bisect_left(cdf, rng.random()), n)

    rng = random.Random(seed)
    per_minute = [(round(rate * w / 100), round(rate * (1 - w / 100)))
                  for w in (PLAN.steps[PLAN.step_of(t)].weight for t in PLAN.grid)]
    crossed = 0
    for _ in range(runs):
        nc = ns = xc = xs = 0
        for (dc, ds), bound in zip(per_minute, bounds, strict=True):
            nc, ns, xc, xs = nc + dc, ns + ds, xc + draw(dc), xs + draw(ds)
            if xc * ns > xs * nc and signed_root_lr(xc, nc, xs, ns, DEFAULT.continuity) >= bound:
                crossed += 1
                break
    return crossed / runs


def test_the_hallucination_test_spends_its_error_but_no_more():
    """Under H0 the sequential test crosses with probability close to its alpha: not far under it
    (half an event of continuity correction left 0.029 of 0.04 unspent), and not over it, also at
    20 tasks/min where a look sees a few canary tasks."""
    alpha, runs = DEFAULT.metrics[0].alpha, 20000
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert 0.85 * alpha <= _null_crossing_rate(200, runs, 11) <= alpha + 3 * se
    assert _null_crossing_rate(20, runs, 12) <= alpha + 3 * se


# --- boundaries ---------------------------------------------------------------------------------

def test_first_boundary_is_the_normal_quantile_and_spending_reaches_alpha():
    info = (1.0, 2.0, 3.0)
    cumulative = tuple(spent("pocock", 0.05, i / 3) for i in info)
    assert boundaries(info, cumulative)[0] == pytest.approx(z_quantile(cumulative[0]))
    for kind in ("pocock", "obf", "power", "hsd"):
        assert spent(kind, 0.05, 1.0, 2.0) == pytest.approx(0.05)
        assert spent(kind, 0.05, 0.0, 2.0) == 0.0


def test_boundaries_spend_the_stated_error_under_the_null():
    """20,000 Brownian paths over 6 unequally spaced looks cross with probability alpha."""
    info = (0.5, 1.0, 1.5, 3.0, 4.0, 6.0)
    cumulative = tuple(spent("hsd", 0.10, i / 6, 2.0) for i in info)
    bounds = boundaries(info, cumulative)
    rng = random.Random(7)
    runs, crossed = 20000, 0
    for _ in range(runs):
        s, previous = 0.0, 0.0
        for i, b in zip(info, bounds, strict=True):
            s += rng.gauss(0.0, math.sqrt(i - previous))
            previous = i
            if s / math.sqrt(i) >= b:
                crossed += 1
                break
    assert abs(crossed / runs - 0.10) < 3.5 * math.sqrt(0.1 * 0.9 / runs)


# --- plan ---------------------------------------------------------------------------------------

def test_plan_parse_and_grid():
    plan = Plan.parse("5:5m, 25:90s,50:600", interval_s="1m")
    assert [(s.weight, s.duration_s) for s in plan.steps] == [(5, 300), (25, 90), (50, 600)]
    assert 390.0 in plan.grid and 360.0 in plan.grid and 420.0 in plan.grid  # step end off the minute
    assert plan.grid[-1] == 990.0
    assert PLAN.slot(61) == 0 and PLAN.slot(89) == 0 and PLAN.slot(91) == 1 and PLAN.slot(1560) == 25


@pytest.mark.parametrize("text, interval, words", [
    ("", 60, "step 1"),
    ("5", 60, "step 1: '5' is not weight:duration"),
    ("5:300,x:600", 60, "step 2: weight 'x' is not a number"),
    ("5:300,25:ten", 60, "step 2: 'ten' is not a duration"),
    ("150:300", 60, "step 1: weight must be > 0 and < 100"),
    ("0:300", 60, "step 1: weight must be > 0 and < 100"),
    ("5:0", 60, "step 1: duration must be > 0"),
    ("5:300,,25:600", 60, "step 2"),
    ("5:300", 0, "interval must be > 0"),
    ("5:300", "fast", "plan interval: 'fast' is not a duration"),
    ("5:100h", 1, "more than 1000 looks"),
])
def test_plan_parse_errors_are_one_line_and_name_the_part(text, interval, words):
    with pytest.raises(ValueError) as err:
        Plan.parse(text, interval_s=interval)
    message = str(err.value)
    assert words in message and "\n" not in message and message.startswith("plan")


@pytest.mark.parametrize("kwargs, field", [
    ({"tasks": -1.0}, "tasks"), ({"hallucinated": math.nan}, "hallucinated"),
    ({"cost_sum": math.inf}, "cost_sum"),
    ({"cost_buckets": ((0.1, 1.0), (1.0, 2.0))}, "cost_buckets"),
    ({"cost_buckets": ((0.1, 1.0), (math.inf, -2.0))}, "cost_buckets"),
])
def test_counts_reject_bad_numbers_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        Counts(**kwargs)


# --- decide -------------------------------------------------------------------------------------

def _simulated_rollout(rng: random.Random, rate: int, hallucination: float) -> list[Look]:
    looks, acc = [], {"c": [0.0] * 4, "s": [0.0] * 4}
    cost = {"c": [0.0] * len(LES), "s": [0.0] * len(LES)}
    for m in range(1, 26):
        w = PLAN.steps[PLAN.step_of(m * 60.0)].weight
        for key, share, p_h in (("c", w / 100, hallucination), ("s", 1 - w / 100, 0.05)):
            n = sum(rng.random() < share for _ in range(rate))
            a = acc[key]
            a[0] += n
            a[1] += sum(rng.random() < p_h for _ in range(n))
            a[2] += sum(rng.random() < 0.10 for _ in range(n))
            a[3] += sum(rng.random() < 0.08 for _ in range(n))
            for _ in range(n):
                cost[key][min(int(rng.gauss(10, 2)), len(LES) - 1)] += 1
        sides = []
        for key in ("c", "s"):
            a, running, cumulative = acc[key], 0.0, []
            for c in cost[key]:
                running += c
                cumulative.append(running)
            sides.append(Counts(a[0], a[2], a[0], a[1], a[3], tuple(zip(LES, cumulative, strict=True)),
                                a[0] * 0.02))
        looks.append(Look(m * 60.0, sides[0], sides[1], w))
    return looks


def test_healthy_canaries_are_rarely_aborted():
    """300 simulated healthy rollouts (60 tasks/min, all 25 looks): the family-wise false-abort rate
    is 5% by design; a gate testing each look at z >= 1.645 aborts about a third of them."""
    rng = random.Random(11)
    runs = 300
    aborted = sum(decide(_simulated_rollout(rng, 60, 0.05), PLAN).decision == "fail" for _ in range(runs))
    assert aborted / runs <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / runs)


def test_a_tripled_hallucination_rate_is_caught_early():
    rng = random.Random(12)
    caught = 0
    for _ in range(20):
        looks = _simulated_rollout(rng, 60, 0.15)
        verdict = decide(looks, PLAN)
        fail = [e for e in verdict.metrics if e.status == "fail"]
        caught += verdict.decision == "fail" and fail[0].metric == "hallucination-rate" and fail[0].at_s <= 900
    assert caught >= 18


def test_fail_reports_the_crossing_look_and_evidence():
    looks = steady_looks(200, 15, hallucination=0.15)
    verdict = decide(looks, PLAN)
    assert verdict.decision == "fail"
    evidence = {e.metric: e for e in verdict.metrics}["hallucination-rate"]
    assert evidence.status == "fail" and evidence.at_s < looks[-1].at_s
    assert evidence.statistic >= evidence.boundary
    assert evidence.canary.value == pytest.approx(0.15)
    assert evidence.canary.low < evidence.canary.value < evidence.canary.high
    assert evidence.difference.value == pytest.approx(0.10)
    assert 0 < evidence.alpha_spent < evidence.alpha == DEFAULT.metrics[0].alpha
    assert "hallucination rate" in verdict.reason and "\n" not in verdict.reason


def test_costlier_canary_fails_on_cost():
    verdict = decide(steady_looks(200, 10, shift=1), PLAN)
    assert verdict.decision == "fail"
    assert [e.metric for e in verdict.metrics if e.status == "fail"] == ["cost-per-task"]
    cost = {e.metric: e for e in verdict.metrics}["cost-per-task"]
    assert cost.difference.value == pytest.approx(0.6)


def test_step_end_passes_with_enough_traffic_and_is_inconclusive_without():
    assert decide(steady_looks(200, 5), PLAN).decision == "continue"
    passed = decide(steady_looks(200, 5), PLAN, step_end=True)
    assert passed.decision == "pass", passed.reason
    thin = decide(steady_looks(20, 5), PLAN, step_end=True)
    assert thin.decision == "inconclusive"
    assert thin.minutes_needed and thin.minutes_needed > 5
    assert f"about {thin.minutes_needed} more minutes" in thin.reason
    assert decide(steady_looks(20, 5), PLAN).decision == "continue"  # not enough data is no fault
    final = decide(steady_looks(200, 25), PLAN, step_end=True)
    assert final.decision == "pass"


def test_sample_ratio_mismatch_is_inconclusive():
    looks = steady_looks(200, 8)
    skewed = [Look(lk.at_s, side(lk.canary.tasks * (2 if lk.at_s > 360 else 1)), lk.stable, lk.canary_weight)
              for lk in looks]
    verdict = decide(skewed, PLAN)
    assert verdict.decision == "inconclusive" and "sample-ratio mismatch" in verdict.reason
    assert decide(looks, PLAN).decision == "continue"


def test_missing_series_is_inconclusive():
    no_canary = [Look(60.0 * m, Counts(), side(200.0 * m), 25) for m in range(1, 4)]
    assert "no canary tasks" in decide(no_canary, PLAN).reason
    assert decide(no_canary, PLAN).decision == "inconclusive"
    no_evals = [Look(lk.at_s, Counts(**{**_fields(lk.canary), "evaluations": 0.0, "hallucinated": 0.0}),
                     lk.stable, lk.canary_weight) for lk in steady_looks(200, 6)]
    verdict = decide(no_evals, PLAN)
    assert verdict.decision == "inconclusive" and "evaluations" in verdict.reason


def _fields(c: Counts) -> dict:
    return {k: getattr(c, k) for k in c.__dataclass_fields__}


def test_zero_and_float_counts():
    zero = [Look(60.0, Counts(), Counts(), 5)]
    assert decide(zero, PLAN).decision == "continue"
    idle = decide(zero, PLAN, step_end=True)
    assert idle.decision == "inconclusive" and "no evaluations on one side" in idle.reason
    fractional = [Look(60.0, Counts(9.7, 1.2, 9.7, 0.4, 0.9, cost_buckets(9.7), 0.2),
                       Counts(190.3, 19.1, 190.3, 9.6, 15.2, cost_buckets(190.3), 3.8), 5)]
    verdict = decide(fractional, PLAN)
    assert verdict.decision == "continue"
    assert json.dumps(verdict.to_dict(), allow_nan=False)


def test_to_dict_is_json_for_argo():
    verdict = decide(steady_looks(200, 3), PLAN)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["decision"] == "continue"
    assert set(data["metrics"]) == {m.name for m in DEFAULT.metrics}
    h = data["metrics"]["hallucination-rate"]
    assert {"n_canary", "bad_canary", "canary", "difference", "statistic", "boundary",
            "information_fraction", "alpha_spent", "reason"} <= set(h)
    assert h["canary"]["low"] <= h["canary"]["value"] <= h["canary"]["high"]


def test_decide_needs_a_look():
    with pytest.raises(ValueError, match="^looks: "):
        decide([], PLAN)


# --- properties ---------------------------------------------------------------------------------

@st.composite
def histories(draw):
    """A cumulative history of up to 12 one-minute looks on the default plan, random rates."""
    minutes = draw(st.integers(1, 12))
    rate = draw(st.floats(5, 2000))
    p_c = draw(st.floats(0, 0.4))
    looks, c, s = [], 0.0, 0.0
    for m in range(1, minutes + 1):
        w = PLAN.steps[PLAN.step_of(m * 60.0)].weight
        c += draw(st.floats(0, 2)) * rate * w / 100
        s += draw(st.floats(0.5, 1.5)) * rate * (1 - w / 100)
        looks.append(Look(m * 60.0, side(c, hallucination=p_c), side(s), w))
    return looks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.randoms(use_true_random=False), st.integers(1, 3), st.booleans())
def test_look_order_and_repeats_change_nothing(looks, rnd, copies, step_end):
    shuffled = looks * copies
    rnd.shuffle(shuffled)
    assert decide(shuffled, PLAN, step_end=step_end).to_dict() == decide(looks, PLAN, step_end=step_end).to_dict()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_a_missed_look_moves_no_boundary(looks, data):
    if len(looks) < 2:
        return
    missing = data.draw(st.integers(0, len(looks) - 2))
    full = decide(looks, PLAN)
    fewer = decide(looks[:missing] + looks[missing + 1:], PLAN)
    for a, b in zip(full.metrics, fewer.metrics, strict=True):
        if a.at_s == b.at_s == looks[-1].at_s:
            assert a.boundary == b.boundary and a.statistic == b.statistic


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data(), st.booleans())
def test_more_canary_bad_events_never_make_the_decision_less_severe(looks, data, step_end):
    start = data.draw(st.integers(0, len(looks) - 1))
    field = data.draw(st.sampled_from(["hallucinated", "tasks_failed", "tasks_with_tool_errors", "cost"]))
    extra = data.draw(st.floats(0.001, 0.2))  # more bad events, as a share of the canary's tasks
    worse = list(looks[:start])
    for lk in looks[start:]:
        c = _fields(lk.canary)
        if field == "cost":
            shifted = cost_buckets(lk.canary.tasks, 1)
            c["cost_buckets"] = shifted
        else:
            total = "evaluations" if field == "hallucinated" else "tasks"
            c[field] = min(c[field] + extra * c[total], c[total])
        worse.append(Look(lk.at_s, Counts(**c), lk.stable, lk.canary_weight))
    before = decide(looks, PLAN, step_end=step_end).decision
    after = decide(worse, PLAN, step_end=step_end).decision
    assert SEVERITY[after] >= SEVERITY[before]


def test_a_better_canary_is_never_failed_and_worsening_it_is_not_less_severe():
    """One-sided: a canary with no hallucinations at all is not a regression; giving it the
    stable's rate or worse only moves the decision toward fail."""
    decisions = [decide(steady_looks(1000, 25, hallucination=p), PLAN, step_end=True).decision
                 for p in (0.0, 0.05, 0.06, 0.08)]
    assert decisions[:2] == ["pass", "pass"] and decisions[3] == "fail"
    assert [SEVERITY[d] for d in decisions] == sorted(SEVERITY[d] for d in decisions)


def test_a_step_change_that_comes_late_is_no_sample_ratio_mismatch():
    """The controller switches weight a little after the plan does (each step waits for its pods
    and its analysis): the looks just after the planned switch mix both weights, and that is no
    fault (a split that stays off is: test_sample_ratio_mismatch_is_inconclusive)."""
    rate, late = 3000.0, 100.0  # tasks per minute; the real switch to 25% comes 100 s after the plan's
    looks, canary, stable = [], 0.0, 0.0
    for minute in range(1, 10):
        for second in range(60):
            t = (minute - 1) * 60 + second
            w = 0.05 if t < 300 + late else 0.25
            canary, stable = canary + rate / 60 * w, stable + rate / 60 * (1 - w)
        looks.append(Look(minute * 60.0, side(canary), side(stable), PLAN.steps[PLAN.step_of(minute * 60.0)].weight))
    assert [decide(looks[:n], PLAN).decision for n in (7, 8, 9)] == ["continue"] * 3


def test_a_step_change_that_comes_early_is_no_sample_ratio_mismatch():
    """The plan's clock starts when the canary's first series is seen, after the controller's: the
    controller may switch to the next weight before the plan does (a CI run of the demo was stopped
    inconclusive so: 6.7% of tasks at a planned 5%, the next step 25%). A share beyond the next
    weight is still a fault."""
    def looks_with(switch_s: float, after: float) -> list[Look]:
        rate, looks, canary, stable = 3000.0, [], 0.0, 0.0
        for minute in range(1, 6):
            for second in range(60):
                w = 0.05 if (minute - 1) * 60 + second < switch_s else after
                canary, stable = canary + rate / 60 * w, stable + rate / 60 * (1 - w)
            looks.append(Look(minute * 60.0, side(canary), side(stable), PLAN.steps[PLAN.step_of(minute * 60.0)].weight))
        return looks
    assert PLAN.steps[1].weight == 25 and PLAN.step_ends[0] == 300
    assert decide(looks_with(240, 0.25), PLAN).decision == "continue"  # a whole interval early
    skewed = decide(looks_with(240, 0.90), PLAN)
    assert skewed.decision == "inconclusive" and "sample-ratio mismatch" in skewed.reason
