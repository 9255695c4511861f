"""The traffic generator's pure parts: the split, the scenario, the simulation, the exposition."""
from __future__ import annotations

import math
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from agenttraffic import exposition, scenario, simulate, split  # noqa: E402

STEPS = [{"setWeight": 5}, {"pause": {"duration": "30s"}}, {"setWeight": 25}, {"pause": {}},
         {"setWeight": 50}, {"pause": {}}]


def rollout(stable="s1", current="c1", index=0, steps=STEPS, **status):
    return {"metadata": {"name": "agent", "namespace": "ns"},
            "spec": {"strategy": {"canary": {"steps": steps}}},
            "status": {"stableRS": stable, "currentPodHash": current, "currentStepIndex": index, **status}}


def pod(name, h, ready=True, deleting=False, **annotations):
    meta = {"name": name, "labels": {split.HASH_LABEL: h}, "annotations": annotations}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


@pytest.mark.parametrize("index, weight", [(0, 0), (1, 5), (2, 5), (3, 25), (5, 50), (6, 100)])
def test_weight_is_the_last_set_weight_before_the_current_step(index, weight):
    assert split.canary_weight(rollout(index=index)) == weight


def test_no_canary_when_stable_is_current_or_aborted():
    assert split.canary_weight(rollout(stable="x", current="x", index=3)) == 0
    assert split.canary_weight(rollout(index=3, abort=True)) == 0


def test_weight_reported_by_a_traffic_router_wins():
    r = rollout(index=3, canary={"weights": {"canary": {"weight": 7}, "stable": {"weight": 93}}})
    assert split.canary_weight(r) == 7


def test_shares_follow_the_weight_and_skip_unready_and_old_pods():
    pods = [pod("s-a", "s1"), pod("s-b", "s1"), pod("c-a", "c1"), pod("c-b", "c1", ready=False),
            pod("old", "o9"), pod("s-gone", "s1", deleting=True)]
    got = split.split(rollout(index=3), pods)
    assert got.shares == pytest.approx({"s-a": 0.375, "s-b": 0.375, "c-a": 0.25})
    assert (got.stable_hash, got.canary_hash, got.canary_weight) == ("s1", "c1", 25)


def test_a_canary_without_ready_pods_gets_nothing():
    got = split.split(rollout(index=3), [pod("s-a", "s1"), pod("c-a", "c1", ready=False)])
    assert got.shares == {"s-a": 1.0}


@given(st.integers(0, 6), st.integers(0, 4), st.integers(0, 4))
def test_shares_always_sum_to_one_when_any_pod_is_ready(index, n_stable, n_canary):
    pods = [pod(f"s{i}", "s1") for i in range(n_stable)] + [pod(f"c{i}", "c1") for i in range(n_canary)]
    got = split.split(rollout(index=index), pods)
    if n_stable + n_canary:
        expected_canary = (split.canary_weight(rollout(index=index)) / 100 if n_stable else 1.0) if n_canary else 0
        assert sum(got.shares.values()) == pytest.approx(1.0)
        canary = sum(v for k, v in got.shares.items() if k.startswith("c"))
        assert canary == pytest.approx(expected_canary)
    else:
        assert got.shares == {}


def test_scenario_rules_apply_in_order_on_raw_values_and_labels():
    plan = scenario.parse({
        "default": {"hallucination": 0.05},
        "versions": [{"match": {"prompt-version": "v9"}, "hallucination": 0.12, "cost": 0.03},
                     {"match": {"model-version": "big"}, "cost": 0.05}]})
    assert plan.quality_for({"prompt-version": "v1"}).hallucination == 0.05
    q = plan.quality_for({"prompt-version": "v9", "model-version": "big"})
    assert (q.hallucination, q.cost) == (0.12, 0.05)
    layers = scenario.pod_layers({"metadata": {"labels": {"agentroll.dev/model-version": "big-1a2b"},
                                               "annotations": {"agentroll.dev/model-version": "big/1"}}})
    assert plan.quality_for(layers).cost == 0.02  # neither the raw value nor the label is "big"
    assert scenario.parse({"versions": [{"match": {"model-version": "big-1a2b"}, "cost": 1}]}) \
        .quality_for(layers).cost == 1


@pytest.mark.parametrize("data, field", [
    ([], "scenario"),
    ({"defaults": {}}, "scenario.defaults"),
    ({"default": {"hallucination": 1.5}}, "default.hallucination"),
    ({"default": {"halucination": 0.1}}, "default.halucination"),
    ({"default": {"cost": "cheap"}}, "default.cost"),
    ({"default": {"cost": -1}}, "default.cost"),
    ({"default": {"tool_correlation": 1}}, "default.tool_correlation"),
    ({"versions": {"match": {}}}, "versions"),
    ({"versions": [{"hallucination": 0.1}]}, "versions[0].match"),
    ({"versions": [{"match": {"promt-version": "x"}}]}, "versions[0].match.promt-version"),
    ({"versions": [{"match": {"prompt-version": "x"}, "cost": float("nan")}]}, "versions[0].cost"),
])
def test_bad_scenarios_name_the_field(data, field):
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.parse(data)
    assert str(e.value).startswith(field + ":") or str(e.value).startswith(field + " ")
    assert "\n" not in str(e.value)


def _simulate(q, n, seed=3):
    counters = simulate.PodCounters(tools=("crm", "search"))
    simulate.run_tasks(random.Random(seed), q, n, counters)
    return counters


def _within(observed, n, p, sigmas=5):
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def test_simulated_rates_match_the_quality():
    q = scenario.Quality(hallucination=0.12, completion=0.8, tool_success=0.9, tool_calls=2, cost=0.05,
                         cost_cv=1.5, evaluated=0.5)
    n = 20000
    c = _simulate(q, n)
    assert c.task_count == n
    assert _within(c.tasks["success"], n, 0.8)
    evaluated = sum(c.evaluations.values())
    assert _within(evaluated, n, 0.5)
    assert _within(c.evaluations["hallucinated"], evaluated, 0.12)
    calls = sum(c.tool_calls.values())
    assert abs(calls - 2 * n) < 5 * math.sqrt(2 * n)
    ok = sum(v for (_, status), v in c.tool_calls.items() if status == "ok")
    assert _within(ok, calls, 0.9)
    assert c.cost_usd / n == pytest.approx(0.05, rel=0.1)
    assert sum(c.cost_buckets) == n
    assert {tool for tool, _ in c.tool_calls} == {"crm", "search"}


def test_correlated_tool_failures_cluster_within_tasks():
    """Same mean failure rate; with correlation fewer tasks see a failure (failures bunch up)."""
    base = dict(tool_success=0.9, tool_calls=4, cost=0.01)
    independent = _simulate(scenario.Quality(**base), 20000)
    clustered = _simulate(scenario.Quality(**base, tool_correlation=0.5), 20000)
    for c in (independent, clustered):
        calls = sum(c.tool_calls.values())
        failed = sum(v for (_, s), v in c.tool_calls.items() if s != "ok")
        assert _within(failed, calls, 0.1, sigmas=8 if c is clustered else 5)
    assert clustered.tasks_with_tool_errors < 0.8 * independent.tasks_with_tool_errors


def test_every_label_value_starts_at_zero():
    c = simulate.PodCounters(tools=("crm",))
    text = exposition.render([exposition.PodSeries("ns", "p", "r", "h", "cv", c)])
    for needle in ('outcome="timeout"', 'verdict="hallucinated"', 'status="error"',
                   'agentroll_tasks_with_tool_errors_total{', 'le="+Inf"'):
        line = next(ln for ln in text.splitlines() if needle in ln)
        assert line.endswith(" 0") or line.endswith(" 0.0"), line


SAMPLE = re.compile(r'^([a-z_]+)\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\} (\S+)$')


def test_exposition_is_well_formed_and_histograms_are_cumulative():
    c = _simulate(scenario.Quality(cost=0.03, cost_cv=2), 500)
    text = exposition.render([exposition.PodSeries("ns", "p-1", "r", "h1", 'we"ird\\', c)])
    buckets = []
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line)
            continue
        m = SAMPLE.match(line)
        assert m, line
        float(m.group(3))
        assert 'agentroll_dev_composite_version="we\\"ird\\\\"' in line
        if m.group(1) == "agentroll_task_cost_usd_bucket":
            buckets.append(float(m.group(3)))
    assert buckets == sorted(buckets) and buckets[-1] == 500
    assert len(buckets) == len(simulate.COST_BUCKETS_USD) + 1
