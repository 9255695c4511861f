"""The judge endpoint: request parsing, its own metrics and its startup warm-up."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from kubectl_agentroll.judge import DEFAULT, _design, designs
from webhook import evidence
from webhook.judgemetrics import MAX_ROLLOUTS, JudgeMetrics
from webhook.judgeserver import DEFAULT_PLAN, BadParameter, make_app, parse_request, parse_time

NOW = 1_800_000_000.0
GOOD = {"namespace": "agents", "rollout": "support", "canary-hash": "c1", "stable-hash": "s1",
        "plan": "5:5m,25:10m,50:10m", "interval": "1m"}


def test_a_good_request():
    target, plan, step_end, at = parse_request(GOOD, NOW)
    assert target == evidence.Target("agents", "support", "c1", "s1")
    assert [s.weight for s in plan.steps] == [5, 25, 50] and plan.total_s == 1500 and plan.interval_s == 60
    assert step_end is False and at == NOW
    assert parse_request({**GOOD, "step-end": "TRUE", "at": "2026-11-26T12:00:00Z"}, NOW)[2:] == (
        True, parse_time("2026-11-26T12:00:00+00:00"))


@pytest.mark.parametrize("change, field", [
    ({"namespace": ""}, "namespace"), ({"plan": ""}, "plan"), ({"plan": "5:300,x"}, "plan"),
    ({"plan": "150:300"}, "plan"), ({"interval": "soon"}, "interval"), ({"step-end": "1"}, "step-end"),
    ({"at": "2026-11-26T12:00:00"}, "at"), ({"at": str(NOW + 3600)}, "at"), ({"at": "nan"}, "at"),
    ({"canary-hash": "c1\"}"}, "canary-hash"),
])
def test_bad_requests_name_the_parameter(change, field):
    with pytest.raises(BadParameter) as e:
        parse_request({**GOOD, **change}, NOW)
    assert str(e.value).startswith(field), str(e.value)
    assert "\n" not in str(e.value)


def test_metrics_show_the_latest_evidence_per_rollout_and_stay_bounded():
    m = JudgeMetrics()
    target = evidence.Target("agents", "support", "c1", "s1")
    body = {"decision": "fail", "metrics": {"hallucination-rate": {
        "statistic": 3.1, "boundary": 2.9, "information_fraction": 0.4, "alpha_spent": 0.01}}}
    m.verdict(target, body)
    m.verdict(target, {**body, "decision": "continue"})
    text = m.render()
    assert 'agentroll_judge_decisions_total{namespace="agents",rollout="support",decision="fail"} 1' in text
    assert ('agentroll_judge_statistic{namespace="agents",rollout="support",canary_hash="c1",'
            'metric="hallucination-rate"} 3.1') in text
    assert 'agentroll_judge_requests_total{outcome="ok"} 2' in text
    for i in range(MAX_ROLLOUTS + 5):
        m.verdict(evidence.Target("ns", f"r{i}", "c1", "s1"), body)
    assert len(m.latest) == MAX_ROLLOUTS
    assert 'rollout="support"' not in m.render()


def test_the_default_plan_is_warmed_before_the_server_listens():
    """The plan a default rollout sends finds its boundaries computed: no miss on its first call."""
    assert parse_request(GOOD, NOW)[1] == DEFAULT_PLAN
    _design.cache_clear()

    async def first_verdict_lookups():
        async with TestServer(make_app("http://127.0.0.1:9")):
            before = _design.cache_info()
            designs(DEFAULT_PLAN)
            return before, _design.cache_info()

    before, after = asyncio.run(first_verdict_lookups())
    assert after.misses == before.misses
    assert after.hits == before.hits + len(DEFAULT.metrics)
