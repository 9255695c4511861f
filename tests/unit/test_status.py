"""The pure status model, from Rollout/ReplicaSet/AnalysisRun dicts shaped like the API returns them."""

from __future__ import annotations

import copy

import pytest

from kubectl_agentroll import composite as cv
from kubectl_agentroll import status as st

UID = "8d1f7c52-1111-4c3e-9f0a-3b2d6c1e0001"
STABLE_HASH = "6b9d8f7c4"
CANARY_HASH = "5f4c9d8b7"

V1 = cv.CompositeVersion(prompt="support-v1", model="claude-sonnet-4",
                         tools=cv.parse_tools("crm@1.2.0,search@2.0.1"),
                         image="registry.example/agent:1.4.0")
V2_PROMPT = cv.CompositeVersion(prompt="support-v2", model=V1.model, tools=V1.tools, image=V1.image)
V2_TWO = cv.CompositeVersion(prompt="support-v2", model="claude-opus-4", tools=V1.tools, image=V1.image)

CANARY_STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]


def rollout_obj(*, steps=CANARY_STEPS, index=1, stable=STABLE_HASH, current=CANARY_HASH,
                phase="Paused", message="CanaryPauseStep", generation=3, observed="3",
                version: cv.CompositeVersion = V2_PROMPT, **status) -> dict:
    """A canary Rollout as `kubectl get rollout -o json` returns it after the controller reconciled."""
    labels = {"app": "support-agent", **version.labels()}
    st_ = {
        "observedGeneration": observed,
        "phase": phase,
        "message": message,
        "stableRS": stable,
        "currentPodHash": current,
        "currentStepIndex": index,
        "replicas": 6,
        "updatedReplicas": 1,
        "readyReplicas": 6,
        "availableReplicas": 6,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-01-01T10:00:00Z"}],
        "controllerPause": True,
        "canary": {},
        "selector": "app=support-agent",
    }
    st_.update(status)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "support-agent", "namespace": "agents", "uid": UID,
                     "generation": generation, "resourceVersion": "4711",
                     "labels": labels, "annotations": {cv.INJECT: "true", cv.PROMPT: version.prompt}},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "support-agent"}},
            "template": {"metadata": {"labels": labels, "annotations": version.annotations()},
                         "spec": {"containers": [{"name": "agent", "image": version.image}]}},
            "strategy": {"canary": {"steps": steps}},
        },
        "status": st_,
    }


def rs_obj(hash_: str, revision: int, version: cv.CompositeVersion | None, *, replicas=5,
           available=None, owner=UID, name=None) -> dict:
    labels = {"app": "support-agent", "rollouts-pod-template-hash": hash_}
    annotations = {}
    image = "registry.example/agent:0.9"
    if version is not None:
        labels.update(version.labels())
        annotations = version.annotations()
        image = version.image
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name or f"support-agent-{hash_}",
            "namespace": "agents",
            "labels": labels,
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                 "name": "support-agent", "uid": owner, "controller": True}],
        },
        "spec": {"replicas": replicas,
                 "template": {"metadata": {"labels": labels, "annotations": annotations},
                              "spec": {"containers": [{"name": "agent", "image": image}]}}},
        "status": {"replicas": replicas,
                   "availableReplicas": replicas if available is None else available},
    }


def run_obj(name="support-agent-5f4c9d8b7-2-0", phase="Inconclusive", hash_=CANARY_HASH,
            values=("0.71", "0.74"), metric_phase="Inconclusive", owner=UID) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name, "namespace": "agents",
            "creationTimestamp": "2025-01-01T10:01:00Z",
            "annotations": {"rollout.argoproj.io/revision": "2"},
            "labels": {"rollout-type": "Step", "rollouts-pod-template-hash": hash_, "step-index": "0"},
            "ownerReferences": [{"kind": "Rollout", "name": "support-agent", "uid": owner}],
        },
        "spec": {"metrics": [
            {"name": "task-success-rate", "successCondition": "result[0] >= 0.9",
             "failureCondition": "result[0] < 0.6", "provider": {"prometheus": {"query": "q"}}},
            {"name": "latency-p95", "successCondition": "result[0] < 5"},
        ]},
        "status": {
            "phase": phase,
            "message": 'metric "task-success-rate" assessed Inconclusive',
            "metricResults": [
                {"name": "task-success-rate", "phase": metric_phase, "count": len(values),
                 "inconclusive": len(values),
                 "measurements": [{"phase": metric_phase, "value": f"[{v}]",
                                   "startedAt": "2025-01-01T10:01:00Z"} for v in values]},
                {"name": "latency-p95", "phase": "Successful", "count": 2, "successful": 2,
                 "measurements": [{"phase": "Successful", "value": "[2.1]"},
                                  {"phase": "Successful", "value": "[2.3]"}]},
            ],
        },
    }


def in_flight_objects(version=V2_PROMPT, canary_available=1):
    return (rollout_obj(version=version),
            [rs_obj(STABLE_HASH, 1, V1), rs_obj(CANARY_HASH, 2, version, replicas=1, available=canary_available)])


def test_paused_canary_shows_step_weights_and_both_versions_layer_by_layer():
    rollout, replicasets = in_flight_objects()
    model = st.rollout_status(rollout, replicasets)
    assert (model.phase, model.message, model.aborted) == ("Paused", "CanaryPauseStep", False)
    assert (model.strategy, model.step, model.set_weight) == ("Canary", "1/4", 20)
    assert model.actual_weight == 1 * 100 // 6  # canary available / all available, as Argo computes
    assert model.stable.composite == V1.composite and model.canary.composite == V2_PROMPT.composite
    assert model.stable.revision == 1 and model.canary.revision == 2
    rows = {row.layer: row for row in model.layers}
    assert (rows["prompt"].stable, rows["prompt"].canary, rows["prompt"].changed) == ("support-v1", "support-v2", True)
    assert [r.layer for r in model.layers if r.changed] == ["prompt", "composite"]
    assert model.canary.raw["tools"] == "crm@1.2.0,search@2.0.1"
    assert model.canary.image == "registry.example/agent:1.4.0"
    assert model.replicas.desired == 5 and model.replicas.available == 6
    assert model.notes == []


def test_two_layers_changing_at_once_is_flagged():
    rollout, replicasets = in_flight_objects(version=V2_TWO)
    model = st.rollout_status(rollout, replicasets)
    assert any(st.MULTI_LAYER_WARNING in note and "prompt, model" in note for note in model.notes)


def test_aborted_rollout_is_degraded_and_says_so():
    rollout = rollout_obj(phase="Degraded", abort=True, pauseConditions=None, controllerPause=False,
                          message="RolloutAborted: Rollout aborted update to revision 2",
                          abortedAt="2025-01-01T10:05:00Z")
    model = st.rollout_status(rollout, in_flight_objects()[1])
    assert model.phase == "Degraded" and model.message.startswith("RolloutAborted")
    assert model.aborted and model.phase_display == "Degraded (aborted)"
    assert model.set_weight == 0  # Argo: an aborted rollout's set weight is 0
    assert any("aborted" in n for n in model.notes)


def test_generation_not_observed_is_progressing_whatever_status_phase_says():
    model = st.rollout_status(rollout_obj(generation=4, observed="3"))
    assert (model.phase, model.message) == ("Progressing", "waiting for rollout spec update to be observed")


def test_non_numeric_observed_generation_counts_as_observed():
    assert st.rollout_phase(rollout_obj(observed="7d84d44bb8"))[0] == "Paused"


def test_controller_pause_without_pause_conditions_is_unpausing():
    rollout = rollout_obj(pauseConditions=[], controllerPause=True)
    assert st.rollout_phase(rollout) == ("Progressing", "waiting for rollout to unpause")


def test_paused_on_inconclusive_analysis_lists_metrics_with_values_and_conditions():
    rollout = rollout_obj(index=0, pauseConditions=[{"reason": "InconclusiveAnalysisRun"}],
                          message="InconclusiveAnalysisRun",
                          canary={"currentStepAnalysisRunStatus": {
                              "name": "support-agent-5f4c9d8b7-2-0", "status": "Inconclusive"}})
    other_revision = run_obj(name="old-run", hash_=STABLE_HASH, phase="Successful")
    not_ours = run_obj(name="someone-else", owner="another-uid")
    model = st.rollout_status(rollout, in_flight_objects()[1], [other_revision, run_obj(), not_ours])
    assert [r.name for r in model.analysis_runs] == ["support-agent-5f4c9d8b7-2-0"]
    run = model.analysis_runs[0]
    assert (run.kind, run.step_index, run.phase, run.revision) == ("Step", 0, "Inconclusive", 2)
    success = run.metrics[0]
    assert success.name == "task-success-rate" and success.phase == "Inconclusive"
    assert success.values == ["[0.71]", "[0.74]"]
    assert (success.success_condition, success.failure_condition) == ("result[0] >= 0.9", "result[0] < 0.6")
    assert run.metrics[1].values == ["[2.1]", "[2.3]"] and run.metrics[1].failure_condition is None
    assert model.current_step_analysis["status"] == "Inconclusive"


def test_only_the_last_measured_values_are_kept():
    values = tuple(str(i) for i in range(10))
    metric = st.analysis_of(run_obj(values=values)).metrics[0]
    assert metric.values == ["[7]", "[8]", "[9]"] and metric.count == 10


def test_blue_green_has_no_steps_or_weights_and_calls_the_new_version_preview():
    rollout = rollout_obj(phase="Paused", message="BlueGreenPause", currentStepIndex=None,
                          blueGreen={"activeSelector": STABLE_HASH, "previewSelector": CANARY_HASH})
    rollout["spec"]["strategy"] = {"blueGreen": {"activeService": "a", "previewService": "p"}}
    model = st.rollout_status(rollout, in_flight_objects()[1])
    assert (model.strategy, model.step, model.set_weight, model.actual_weight) == ("BlueGreen", "", None, None)
    assert model.canary.role == "preview" and model.stable.role == "stable"


def test_no_canary_in_flight_shows_stable_only_at_full_weight():
    rollout = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy", message="",
                          pauseConditions=None, controllerPause=False)
    model = st.rollout_status(rollout, [rs_obj(STABLE_HASH, 1, V1)])
    assert model.canary is None and model.stable.composite == V1.composite
    assert (model.step, model.set_weight, model.actual_weight) == ("4/4", 100, 100)
    assert not any(row.changed for row in model.layers)
    assert all(row.canary is None for row in model.layers)


def test_traffic_routed_canary_reports_the_routers_weight():
    rollout = rollout_obj(canary={"weights": {"canary": {"weight": 17, "podTemplateHash": CANARY_HASH},
                                              "stable": {"weight": 83}}})
    rollout["spec"]["strategy"]["canary"]["trafficRouting"] = {"nginx": {"stableIngress": "x"}}
    assert st.actual_weight(rollout, None) == 17
    del rollout["status"]["canary"]["weights"]
    assert st.actual_weight(rollout, None) == 20  # no weights reported yet: the set weight


def test_workload_ref_rollout_without_labels_reads_unset_layers():
    rollout = rollout_obj()
    del rollout["spec"]["template"]
    rollout["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "support-agent"}
    model = st.rollout_status(rollout, [rs_obj(STABLE_HASH, 1, None), rs_obj(CANARY_HASH, 2, None, replicas=1)])
    assert model.stable.composite == "unset" and set(model.stable.layers.values()) == {"unset"}
    assert model.canary.raw == {layer: "unset" for layer in cv.LAYERS}
    assert model.canary.image == "registry.example/agent:0.9"
    assert any("workloadRef" in n for n in model.notes)


def test_replicasets_of_other_rollouts_are_ignored():
    rollout, replicasets = in_flight_objects()
    intruder = rs_obj(CANARY_HASH, 9, V2_TWO, owner="another-uid", name="intruder")
    model = st.rollout_status(rollout, [intruder, *replicasets])
    assert model.canary.replicaset == f"support-agent-{CANARY_HASH}"


def test_client_side_phase_when_the_controller_wrote_none():
    rollout = rollout_obj(phase="", message="", pauseConditions=None, controllerPause=False,
                          updatedReplicas=0)
    assert st.rollout_phase(rollout) == ("Progressing", "more replicas need to be updated")
    aborted = rollout_obj(phase="", conditions=[{"type": "Progressing", "reason": "RolloutAborted",
                                                 "message": "metric failed"}])
    assert st.rollout_phase(aborted) == ("Degraded", "RolloutAborted: metric failed")


def test_list_rows_show_only_opted_in_rollouts_with_stable_to_canary():
    rollout, replicasets = in_flight_objects()
    plain = copy.deepcopy(rollout)
    plain["metadata"].update(name="plain", uid="plain-uid", labels={"app": "x"}, annotations={})
    healthy = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy")
    healthy["metadata"].update(name="healthy", uid="healthy-uid")
    healthy_rs = rs_obj(STABLE_HASH, 1, V1, owner="healthy-uid")
    rows = st.rollout_rows([rollout, plain, healthy], [*replicasets, healthy_rs])
    assert [r.name for r in rows] == ["healthy", "support-agent"]
    assert (rows[0].stable, rows[0].canary, rows[0].weight) == (V1.composite, None, "100")
    row = rows[1]
    assert (row.phase, row.step, row.stable, row.canary) == ("Paused", "1/4", V1.composite, V2_PROMPT.composite)
    assert row.weight == "20 (actual 16)"


def test_only_rollouts_not_settled_need_their_replicasets_read():
    in_flight, _ = in_flight_objects()
    healthy = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy")
    assert st.settled(healthy) and not st.settled(in_flight)
    unobserved = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy", generation=4, observed="3")
    no_template = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy")
    del no_template["spec"]["template"]  # workloadRef: the labels are the ReplicaSet's alone
    assert not st.settled(unobserved) and not st.settled(no_template)
    hostile = rollout_obj(stable="x) ,y", current=None)
    plain = rollout_obj()
    plain["metadata"].update(labels={}, annotations={})
    assert st.replicasets_to_read([healthy, hostile, plain]) == set()
    assert st.replicasets_to_read([in_flight, unobserved, healthy]) == {STABLE_HASH, CANARY_HASH}
    assert st.replicasets_to_read([plain], opted_in_only=False) == {STABLE_HASH, CANARY_HASH}


def test_list_row_of_a_settled_rollout_reads_the_stable_version_off_its_template():
    healthy = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy", version=V1)
    assert st.rollout_rows([healthy], [])[0].stable == V1.composite
    unobserved = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy", version=V1, observed="2")
    assert st.rollout_rows([unobserved], [])[0].stable == st.NO_REPLICASET
    relabelled = rs_obj(STABLE_HASH, 1, V2_PROMPT)  # the ReplicaSet, when read, has the last word
    assert st.rollout_rows([healthy], [relabelled])[0].stable == V2_PROMPT.composite


def test_version_diff_defaults_to_stable_vs_canary_with_raw_values():
    rollout, replicasets = in_flight_objects(version=V2_TWO)
    diff = st.version_diff(rollout, replicasets)
    assert (diff.old.role, diff.new.role) == ("stable", "canary")
    assert diff.changed == ["prompt", "model"]
    model_row = next(r for r in diff.rows if r.layer == "model")
    assert (model_row.old_raw, model_row.new_raw) == ("claude-sonnet-4", "claude-opus-4")
    assert diff.warning and st.MULTI_LAYER_WARNING in diff.warning


def test_version_diff_without_canary_compares_the_last_two_revisions():
    rollout = rollout_obj(current=CANARY_HASH, stable=CANARY_HASH, phase="Healthy")
    replicasets = [rs_obj("aaaa", 1, V1, replicas=0), rs_obj(STABLE_HASH, 2, V2_PROMPT, replicas=0),
                   rs_obj(CANARY_HASH, 3, V2_TWO)]
    diff = st.version_diff(rollout, replicasets)
    assert (diff.old.revision, diff.new.revision) == (2, 3)
    assert diff.changed == ["model"] and diff.warning is None
    explicit = st.version_diff(rollout, replicasets, revision=1, to=2)
    assert explicit.changed == ["prompt"] and explicit.old.role == "old"
    with pytest.raises(st.DiffError, match=r"no revision 7 \(have: 1, 2, 3\)"):
        st.version_diff(rollout, replicasets, revision=7)


def test_version_diff_with_one_revision_says_so():
    rollout = rollout_obj(current=STABLE_HASH, phase="Healthy")
    with pytest.raises(st.DiffError, match="fewer than two revisions"):
        st.version_diff(rollout, [rs_obj(STABLE_HASH, 1, V1)])


def test_the_display_model_is_plain_data():
    rollout, replicasets = in_flight_objects()
    data = st.rollout_status(rollout, replicasets, [run_obj()]).to_dict()
    assert data["canary"]["layers"]["prompt"] == "support-v2"
    assert data["analysis_runs"][0]["metrics"][0]["values"] == ["[0.71]", "[0.74]"]


def test_list_row_of_a_first_revision_has_no_stable_version_yet():
    first = rollout_obj(stable=None, current=CANARY_HASH, index=0, phase="Progressing")
    rows = st.rollout_rows([first], [rs_obj(CANARY_HASH, 1, V1, replicas=0)])
    assert (rows[0].stable, rows[0].canary) == ("-", V1.composite)
    unlabelled = st.rollout_rows([first], [rs_obj(CANARY_HASH, 1, None)])
    assert unlabelled[0].canary == "unset"
