"""From Prometheus answers to the judge's Counts and Looks (webhook/evidence.py)."""
from __future__ import annotations

import math

import pytest

from kubectl_agentroll.plan import Plan
from webhook import evidence

T = evidence.Target("agents", "support", "c1a2", "s3b4")


def sample(h, series, value, **labels):
    return {"metric": {"rollouts_pod_template_hash": h, "series": series, **labels},
            "value": [1700000000.0, str(value)]}


def test_counts_are_read_per_side_and_kind():
    result = [
        sample("c1a2", "tasks", 80, outcome="success"), sample("c1a2", "tasks", 15, outcome="failure"),
        sample("c1a2", "tasks", 5, outcome="timeout"),
        sample("c1a2", "evaluations", 90, verdict="grounded"), sample("c1a2", "evaluations", 10, verdict="hallucinated"),
        sample("c1a2", "tool_error_tasks", 7),
        sample("c1a2", "cost_bucket", 40, le="0.01"), sample("c1a2", "cost_bucket", 100, le="+Inf"),
        sample("c1a2", "cost_sum", 2.5),
        sample("s3b4", "tasks", 900, outcome="success"), sample("s3b4", "tasks", 100, outcome="error"),
        sample("other", "tasks", 1e6, outcome="success"),
    ]
    canary, stable = evidence.counts_from(result, T)
    assert (canary.tasks, canary.tasks_failed, canary.evaluations, canary.hallucinated) == (100, 20, 100, 10)
    assert canary.tasks_with_tool_errors == 7 and canary.cost_sum == 2.5
    assert canary.cost_buckets == ((0.01, 40.0), (math.inf, 100.0))
    assert (stable.tasks, stable.tasks_failed, stable.evaluations) == (1000, 100, 0)
    assert stable.cost_buckets == ()


def test_absent_series_count_as_zero_and_wobbly_buckets_are_made_monotone():
    canary, stable = evidence.counts_from([
        sample("c1a2", "cost_bucket", 41.2, le="0.01"), sample("c1a2", "cost_bucket", 40.9, le="0.02"),
        sample("c1a2", "cost_bucket", 55, le="+Inf"), sample("c1a2", "tasks", float("nan"), outcome="success")],
        T)
    assert canary.tasks == 0 and stable == evidence.Counts()
    assert canary.cost_buckets == ((0.01, 41.2), (0.02, 41.2), (math.inf, 55.0))


def test_bad_counts_never_exceed_their_totals():
    canary, _ = evidence.counts_from([
        sample("c1a2", "evaluations", 3.2, verdict="hallucinated"), sample("c1a2", "tool_error_tasks", 9)], T)
    assert canary.hallucinated <= canary.evaluations and canary.tasks_with_tool_errors <= canary.tasks


def test_look_query_selects_both_hashes_of_one_namespace_over_the_window():
    q = evidence.look_query(T, 300)
    assert q.count("increase(") == 5 and q.count("[300s]") == 5
    assert q.count('namespace="agents",rollouts_pod_template_hash=~"c1a2|s3b4"') == 5
    for name in ("tasks", "evaluations", "tool_error_tasks", "cost_bucket", "cost_sum"):
        assert f'"series", "{name}"' in q
    assert "[90500ms]" in evidence.look_query(T, 90.5)
    start = evidence.canary_start_query(T, 3600, 5)
    assert 'rollouts_pod_template_hash="c1a2"' in start and "[3600s:5s]" in start


@pytest.mark.parametrize("kwargs, field", [
    ({"namespace": 'x",evil="1'}, "namespace"), ({"canary_hash": ""}, "canary-hash"),
    ({"stable_hash": "a|b"}, "stable-hash"), ({"rollout": "a\nb"}, "rollout"),
    ({"stable_hash": "c1a2"}, "canary-hash"),
])
def test_targets_that_could_inject_promql_are_refused(kwargs, field):
    with pytest.raises(ValueError) as e:
        evidence.Target(**{"namespace": "agents", "rollout": "support", "canary_hash": "c1a2",
                           "stable_hash": "s3b4", **kwargs})
    assert str(e.value).startswith(field)


def test_look_times_follow_the_plan_grid_and_continue_past_its_end():
    plan = Plan.parse("5:120,25:60", interval_s=60)
    assert evidence.look_times(plan, 59) == []
    assert evidence.look_times(plan, 130) == [60, 120]
    assert evidence.look_times(plan, 300) == [60, 120, 180, 240, 300]
    assert evidence.weight_at(plan, 60) == 5 and evidence.weight_at(plan, 150) == 25
    assert evidence.weight_at(plan, 1000) == 25
