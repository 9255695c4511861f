"""The judge's answer as `status` shows it."""
from __future__ import annotations

import json

from kubectl_agentroll import verdictview
from kubectl_agentroll.judge import Counts, Look, decide
from kubectl_agentroll.plan import Plan
from kubectl_agentroll.render import render_status
from kubectl_agentroll.status import rollout_status


def _answer(bad_canary: float) -> str:
    plan = Plan.parse("20:300", interval_s=60)
    looks = [Look(at_s=60.0 * k, canary=Counts(tasks=200.0 * k, evaluations=200.0 * k, hallucinated=bad_canary * k),
                  stable=Counts(tasks=800.0 * k, evaluations=800.0 * k, hallucinated=40.0 * k), canary_weight=20)
             for k in range(1, 4)]
    return json.dumps(decide(looks, plan).to_dict())


def test_a_failing_answer_reads_as_plain_words_and_rows():
    view = verdictview.parse(_answer(bad_canary=40.0))
    assert view is not None and view.decision == "fail"
    assert verdictview.headline(view).startswith("the judge stopped the canary at minute 3")
    (h,) = [m for m in view.metrics if m.metric == "hallucination-rate"]
    assert h.status == "fail" and h.canary.startswith("20.0% [") and h.stable.startswith("5.0% [")
    assert h.difference == "+15.0 pts" and float(h.statistic) >= float(h.boundary)


def test_other_values_are_not_judge_answers():
    for value in ("[0.42]", "NaN", "{}", '{"decision": "maybe"}', "{not json", None, 3):
        assert verdictview.parse(value) is None


def test_status_shows_the_decision_not_the_json_and_the_evidence_below():
    answer = _answer(bad_canary=40.0)
    rollout = {"metadata": {"name": "agent", "namespace": "ns", "uid": "u1"},
               "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
               "status": {"currentPodHash": "c1", "stableRS": "s1", "phase": "Degraded", "abort": True}}
    run = {"metadata": {"name": "agent-c1-2", "labels": {"rollouts-pod-template-hash": "c1",
                                                         "rollout-type": "Background"},
                        "ownerReferences": [{"uid": "u1"}], "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"metrics": [{"name": "agent-quality"}]},
           "status": {"phase": "Failed", "metricResults": [
               {"name": "agent-quality", "phase": "Failed", "failed": 1,
                "measurements": [{"phase": "Failed", "value": answer}]}]}}
    text = render_status(rollout_status(rollout, [], [run]))
    assert answer not in text
    assert "agent-c1-2: the judge stopped the canary at minute 3" in text
    assert "hallucination-rate" in text and "+15.0 pts" in text and "FAILS AT" in text
    (row,) = [line for line in text.splitlines() if line.startswith("hallucination-rate ")]
    assert "✖ fail" in row
