import copy
from dataclasses import replace

import jsonpatch
import pytest

from kubectl_agentroll import composite as cv
from kubectl_agentroll import mutate as engine
from kubectl_agentroll.mutate import MAX_INSERTED_STEPS, analysis_positions, mutate, pointer
from kubectl_agentroll.policy import ALWAYS_APPEND, BUILTIN, Policy, TemplateRef, policy_from_spec
from tests.unit.rollouts import AGENT, request, rollout


def admit(obj, policy=BUILTIN, operation="CREATE", old=None):
    decision = mutate(request(obj, operation, old), policy)
    assert decision.allowed, decision.message
    return decision, jsonpatch.apply_patch(obj, decision.patch)


def steps_of(obj):
    return obj["spec"]["strategy"]["canary"]["steps"]


def kinds(steps):
    return [next(iter(s)) for s in steps]


def test_labels_on_rollout_and_pods_and_raw_values_on_template():
    _, out = admit(rollout())
    labels = out["metadata"]["labels"]
    assert labels[cv.PROMPT] == "support-v7"
    assert labels[cv.MODEL] == "claude-sonnet-4-20250514"
    assert labels[cv.IMAGE_VERSION] == "1.8.2"
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "support-agent", **labels}
    annotations = out["spec"]["template"]["metadata"]["annotations"]
    assert annotations[cv.IMAGE_VERSION] == "ghcr.io/example/support-agent:1.8.2"
    assert annotations[cv.TOOLS] == "crm-mcp-server@1.2.0,search@2.0.1"


def test_analysis_goes_after_the_pause_that_follows_each_weight():
    _, out = admit(rollout())
    assert kinds(steps_of(out)) == ["setWeight", "pause", "analysis", "setWeight", "pause", "analysis"]
    user_steps = [s for s in steps_of(out) if "analysis" not in s]
    assert user_steps == steps_of(AGENT)
    analysis = steps_of(out)[2]["analysis"]
    assert analysis["templates"] == [{"templateName": "agent-quality", "clusterScope": True}]
    args = {a["name"]: a for a in analysis["args"]}
    assert set(args) == {"rollout", "namespace", "canary-hash", "stable-hash", "composite-version", "plan",
                         "look-interval"}
    assert args["canary-hash"]["valueFrom"] == {"podTemplateHashValue": "Latest"}
    assert args["stable-hash"]["valueFrom"] == {"podTemplateHashValue": "Stable"}
    assert args["look-interval"]["value"] == "1m"


@pytest.mark.parametrize(("steps", "plan"), [
    ([{"setWeight": 5}, {"pause": {"duration": "5m"}}, {"setWeight": 25}, {"pause": {"duration": 600}},
      {"setWeight": 50}, {"pause": {}}], "5:5m,25:600,50:10m"),
    ([{"setWeight": 10}, {"setWeight": 30}], "10:1m,30:1m"),
    ([{"setWeight": 10}, {"setHeaderRoute": {"name": "h"}}, {"pause": {"duration": "2h"}}, {"setWeight": 100}],
     "10:2h"),
    ([{"setWeight": 0}, {"pause": {"duration": 60}}, {"setWeight": 20}], "20:1m"),
    ([{"setWeight": 10}, {"pause": {"duration": "0s"}}, {"setWeight": 20}, {"pause": {"duration": True}},
      {"setWeight": 30}, {"pause": {"duration": "5 minutes"}}, {"setWeight": 40}, {"pause": "soon"}],
     "10:10m,20:10m,30:10m,40:10m"),
    ([{"setWeight": True}, {"setWeight": "20"}, {"pause": {}}, "junk"], None),
])
def test_the_judge_plan_follows_the_steps(steps, plan):
    assert engine.look_plan(steps, "1m") == plan


def test_background_looks_run_during_every_pause_from_the_first_canary_step():
    _, out = admit(rollout())
    background = out["spec"]["strategy"]["canary"]["analysis"]
    assert background["templates"] == [{"templateName": "agent-quality-watch", "clusterScope": True}]
    assert background["startingStep"] == 1
    args = {a["name"]: a.get("value") for a in background["args"]}
    step_args = {a["name"]: a.get("value") for a in steps_of(out)[2]["analysis"]["args"]}
    assert args == step_args and args["plan"] == engine.look_plan(steps_of(AGENT), "1m")


def test_no_background_looks_when_the_rollout_has_its_own_or_the_policy_none():
    own = rollout()
    own["spec"]["strategy"]["canary"]["analysis"] = {"templates": [{"templateName": "mine"}]}
    _, out = admit(own)
    assert out["spec"]["strategy"]["canary"]["analysis"] == {"templates": [{"templateName": "mine"}]}
    _, out = admit(rollout(), replace(BUILTIN, background_templates=()))
    assert "analysis" not in out["spec"]["strategy"]["canary"]
    assert kinds(steps_of(out)).count("analysis") == 2


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"setWeight": 10}, {"setWeight": 30}], [1, 2]),
        ([{"setWeight": 10}, {"pause": {}}, {"setWeight": 100}], [2]),
        ([{"pause": {}}, {"setWeight": 20}], [2]),
        ([{"setCanaryScale": {"replicas": 1}}, {"setWeight": 0}, {"pause": {"duration": 60}}], [3]),
        ([{"setWeight": True}, {"setWeight": "20"}], []),
        ([{"setWeight": 10}, {"setHeaderRoute": {"name": "h"}}, {"pause": {"duration": "5m"}}], [3]),
        ([{"setWeight": 10}, {"setCanaryScale": {"weight": 10}}, {"setWeight": 20}, {"pause": {}}], [1, 4]),
        ([{"setWeight": 10}, {"pause": {}}, {"pause": {}}], [2]),
    ],
)
def test_analysis_positions(steps, expected):
    assert analysis_positions(steps) == expected


def test_inserts_are_single_adds_never_a_replaced_array():
    decision, _ = admit(rollout())
    step_ops = [op for op in decision.patch if "/steps" in op["path"]]
    assert [op["op"] for op in step_ops] == ["add", "add"]
    assert [op["path"] for op in step_ops] == [
        "/spec/strategy/canary/steps/2",
        "/spec/strategy/canary/steps/-",
    ]


def test_canary_without_steps_gets_default_steps_with_analysis():
    _, out = admit(rollout(strategy={"canary": {}}))
    steps = steps_of(out)
    assert [s.get("setWeight") for s in steps if "setWeight" in s] == [5, 25, 50]
    assert kinds(steps) == ["setWeight", "pause", "analysis"] * 3
    assert [s["pause"]["duration"] for s in steps if "pause" in s] == ["5m", "10m", "10m"]


def test_empty_steps_list_is_filled_element_by_element():
    decision, out = admit(rollout(strategy={"canary": {"steps": []}}))
    assert all(op["path"] == "/spec/strategy/canary/steps/-" for op in decision.patch if "steps" in op["path"])
    assert len(steps_of(out)) == 9


@pytest.mark.parametrize(
    "canary",
    [
        {"steps": [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "mine"}]}}]},
        {"analysis": {"templates": [{"templateName": "bg"}]}, "steps": [{"setWeight": 20}]},
    ],
)
def test_existing_analysis_is_left_alone(canary):
    decision, out = admit(rollout(strategy={"canary": copy.deepcopy(canary)}))
    assert out["spec"]["strategy"]["canary"] == canary
    assert not any("/strategy/" in op["path"] for op in decision.patch)


def test_always_append_adds_agent_gates_next_to_user_analysis():
    policy = Policy(mode=ALWAYS_APPEND)
    canary = {"steps": [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "http"}]}}]}
    _, out = admit(rollout(strategy={"canary": canary}), policy)
    assert kinds(steps_of(out)) == ["setWeight", "analysis", "analysis"]
    assert steps_of(out)[1]["analysis"]["templates"][0]["templateName"] == "agent-quality"
    again = mutate(request(out), policy)
    assert again.patch == []


def test_analysis_none_injects_no_gates_but_still_labels():
    obj = rollout()
    obj["metadata"]["annotations"][cv.ANALYSIS] = "none"
    decision, out = admit(obj)
    assert steps_of(out) == steps_of(AGENT)
    assert out["metadata"]["labels"][cv.COMPOSITE_VERSION]


def test_analysis_annotation_names_the_templates():
    obj = rollout()
    obj["metadata"]["annotations"][cv.ANALYSIS] = "agent-quality, cost-guard"
    _, out = admit(obj)
    names = [t["templateName"] for t in steps_of(out)[2]["analysis"]["templates"]]
    assert names == ["agent-quality", "cost-guard"]


def test_analysis_annotation_outside_allowed_templates_is_denied():
    obj = rollout()
    obj["metadata"]["annotations"][cv.ANALYSIS] = "always-pass"
    policy = Policy(allowed_templates=("agent-quality",), name="agents")
    decision = mutate(request(obj), policy)
    assert not decision.allowed
    assert "agentroll.dev/analysis" in decision.message
    assert "'always-pass' is not allowed by policy 'agents'" in decision.message


def test_blue_green_gets_pre_promotion_analysis():
    strategy = {"blueGreen": {"activeService": "agent-active", "previewService": "agent-preview"}}
    _, out = admit(rollout(strategy=strategy))
    pre = out["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]
    assert pre["templates"] == [{"templateName": "agent-quality", "clusterScope": True}]
    assert out["spec"]["strategy"]["blueGreen"]["activeService"] == "agent-active"


def test_blue_green_with_its_own_pre_promotion_analysis_is_untouched():
    strategy = {"blueGreen": {"activeService": "a", "prePromotionAnalysis": {"templates": [{"templateName": "x"}]}}}
    _, out = admit(rollout(strategy=copy.deepcopy(strategy)))
    assert out["spec"]["strategy"] == strategy


def test_workload_ref_labels_only_the_rollout_and_warns():
    obj = rollout()
    del obj["spec"]["template"]
    obj["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agent"}
    decision, out = admit(obj)
    assert out["metadata"]["labels"][cv.PROMPT] == "support-v7"
    assert "template" not in out["spec"]
    assert any("workloadRef" in w and "referenced workload" in w for w in decision.warnings)
    assert any("undeclared" in w and "model" in w and "image" in w for w in decision.warnings)


@pytest.mark.parametrize("template_metadata", [None, {}, {"labels": None}])
def test_missing_maps_are_created(template_metadata):
    obj = rollout(template_metadata=template_metadata)
    decision, out = admit(obj)
    metadata = out["spec"]["template"]["metadata"]
    assert metadata["labels"] == out["metadata"]["labels"]
    assert metadata["annotations"][cv.TOOLS] == "crm-mcp-server@1.2.0,search@2.0.1"
    if template_metadata is None:
        creating = [op for op in decision.patch if op["path"] == "/spec/template/metadata"]
        assert len(creating) == 1 and creating[0]["op"] == "add"


def test_rollout_without_labels_map_gets_one_add():
    obj = rollout()
    assert "labels" not in obj["metadata"]
    decision, _ = admit(obj)
    assert [op for op in decision.patch if op["path"].startswith("/metadata/")] == [
        {"op": "add", "path": "/metadata/labels", "value": mutate(request(rollout()), BUILTIN).version.labels()}
    ]


def test_json_pointer_escaping():
    assert pointer("metadata", "labels", "agentroll.dev/prompt-version") == "/metadata/labels/agentroll.dev~1prompt-version"
    assert pointer("a~b/c") == "/a~0b~1c"


def test_existing_label_with_stale_value_is_replaced():
    obj = rollout()
    obj["metadata"]["labels"] = {cv.PROMPT: "old", "team": "support"}
    decision, out = admit(obj)
    assert {"op": "replace", "path": "/metadata/labels/agentroll.dev~1prompt-version", "value": "support-v7"} in decision.patch
    assert out["metadata"]["labels"]["team"] == "support"


def test_idempotent_on_own_output():
    _, out = admit(rollout())
    again = mutate(request(out), BUILTIN)
    assert again.allowed and again.patch == []


@pytest.mark.parametrize(
    ("annotations", "field"),
    [
        ({cv.INJECT: "yes"}, cv.INJECT),
        ({cv.INJECT: "TRUE"}, cv.INJECT),
        ({cv.INJECT: True}, cv.INJECT),
        ({cv.INJECT: "true", cv.TOOLS: "crm"}, cv.TOOLS),
        ({cv.INJECT: "true", cv.CONTAINER: "sidecar"}, cv.CONTAINER),
        ({cv.INJECT: "true", cv.ANALYSIS: "Not_A_Name"}, cv.ANALYSIS),
    ],
)
def test_denials_name_the_annotation(annotations, field):
    decision = mutate(request(rollout(annotations=annotations)), BUILTIN)
    assert not decision.allowed
    assert decision.message.startswith(f"agentroll: {field}: ")
    assert "\n" not in decision.message


def test_inject_false_opts_out_even_when_the_namespace_is_selected():
    obj = rollout()
    obj["metadata"]["annotations"][cv.INJECT] = "false"
    decision = mutate(request(obj), Policy(selects_namespace=True))
    assert decision.allowed and decision.patch == []


def test_namespace_selected_by_policy_opts_in_without_annotation():
    obj = rollout()
    del obj["metadata"]["annotations"][cv.INJECT]
    assert mutate(request(obj), BUILTIN).patch == []
    assert mutate(request(obj), Policy(selects_namespace=True)).patch


@pytest.mark.parametrize(
    "req_changes",
    [
        {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}},
        {"operation": "DELETE"},
        {"operation": "CONNECT"},
        {"subResource": "status"},
    ],
)
def test_other_requests_are_allowed_untouched(req_changes):
    req = request(rollout())
    req.update(req_changes)
    decision = mutate(req, BUILTIN)
    assert decision.allowed and decision.patch == [] and decision.warnings == []


def test_update_changing_two_layers_warns_with_old_and_new():
    old = admit(rollout())[1]
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][cv.PROMPT] = "support-v8"
    new["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "claude-opus-4"
    decision, out = admit(new, operation="UPDATE", old=old)
    warning = next(w for w in decision.warnings if "at once" in w)
    assert "prompt support-v7 -> support-v8" in warning
    assert "model claude-sonnet-4-20250514 -> claude-opus-4" in warning
    assert "could not be attributed to one layer" in warning
    assert out["spec"]["template"]["metadata"]["labels"][cv.PROMPT] == "support-v8"


def test_update_changing_one_layer_does_not_warn_about_attribution():
    old = admit(rollout())[1]
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][cv.PROMPT] = "support-v8"
    decision, _ = admit(new, operation="UPDATE", old=old)
    assert not any("at once" in w for w in decision.warnings)


def test_policy_templates_and_extra_args():
    policy = policy_from_spec({
        "analysis": {
            "templates": ["agent-quality", {"name": "cost-guard", "clusterScope": False}],
            "args": [{"name": "prometheus-address", "value": "http://prom:9090"}],
        },
        "modelEnvVars": ["LLM"],
    })
    obj = rollout()
    obj["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "LLM", "value": "m2"})
    _, out = admit(obj, policy)
    analysis = steps_of(out)[2]["analysis"]
    assert analysis["templates"][1] == {"templateName": "cost-guard"}
    assert {"name": "prometheus-address", "value": "http://prom:9090"} in analysis["args"]
    assert out["metadata"]["labels"][cv.MODEL] == "m2"


def test_policy_default_steps():
    policy = Policy(default_steps=({"setWeight": 10}, {"pause": {"duration": "1m"}}), templates=(TemplateRef("q"),))
    _, out = admit(rollout(strategy={"canary": {}}), policy)
    assert kinds(steps_of(out)) == ["setWeight", "pause", "analysis"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda o: o["metadata"].__setitem__("annotations", ["not", "a", "map"]),
        lambda o: o["metadata"].__setitem__("labels", "x"),
        lambda o: o["spec"]["template"].__setitem__("metadata", 7),
        lambda o: o["spec"]["strategy"]["canary"].__setitem__("steps", {"a": 1}),
        lambda o: o["spec"]["template"]["spec"].__setitem__("containers", "agent"),
        lambda o: o["metadata"]["annotations"].__setitem__(cv.PROMPT, 3),
        lambda o: o.__setitem__("spec", None),
        lambda o: o.__setitem__("metadata", None),
    ],
)
def test_malformed_objects_are_denied_or_handled_never_raise(mangle):
    obj = rollout()
    mangle(obj)
    decision = mutate(request(obj), BUILTIN)
    if decision.allowed:
        jsonpatch.apply_patch(obj, decision.patch)
    else:
        assert decision.message.startswith("agentroll: ")


def _weights(count: int) -> dict:
    return {"canary": {"steps": [{"setWeight": 1 + i % 99} for i in range(count)]}}


def test_steps_inserted_are_bounded_and_the_denial_names_the_limit():
    at_limit = mutate(request(rollout(strategy=_weights(MAX_INSERTED_STEPS))), BUILTIN)
    assert at_limit.allowed
    assert sum("/steps/" in op["path"] for op in at_limit.patch) == MAX_INSERTED_STEPS
    over = mutate(request(rollout(strategy=_weights(MAX_INSERTED_STEPS + 1))), BUILTIN)
    assert not over.allowed and over.patch == []
    assert over.message == (
        f"agentroll: spec.strategy.canary.steps: more than {MAX_INSERTED_STEPS} steps to insert "
        f"(one analysis step per setWeight below 100); the webhook inserts at most "
        f"{MAX_INSERTED_STEPS} per Rollout, a limit on the size of its mutation"
    )
    # Steps that get no analysis cost nothing, however many there are.
    flat = {"canary": {"steps": [{"setWeight": 100}] * 50_000}}
    assert mutate(request(rollout(strategy=flat)), BUILTIN).allowed


def test_policy_default_steps_count_towards_the_limit():
    many = policy_from_spec({"defaultSteps": [{"setWeight": 10}, {"pause": {}}] * 40}, name="big")
    decision = mutate(request(rollout(strategy={"canary": {}})), many)
    assert not decision.allowed
    assert decision.message.startswith(
        "agentroll: spec.strategy.canary.steps: more than 100 steps to insert (policy 'big' "
        "defaultSteps")


def test_opting_out_removes_the_composite_version_the_webhook_wrote():
    injected = jsonpatch.apply_patch(rollout(), mutate(request(rollout()), BUILTIN).patch)
    injected["metadata"]["annotations"][cv.INJECT] = "false"
    decision = mutate(request(injected, "UPDATE", old=injected), BUILTIN)
    assert decision.allowed and all(op["op"] == "remove" for op in decision.patch)
    out = jsonpatch.apply_patch(injected, decision.patch)
    template = out["spec"]["template"]["metadata"]
    for labels in (out["metadata"].get("labels", {}), template["labels"]):
        assert not set(labels) & set(cv.VERSION_LABELS)
    assert template["labels"] == {"app": "support-agent"}
    assert not any(key.startswith(cv.PREFIX) for key in template.get("annotations", {}))
    assert out["spec"]["strategy"] == injected["spec"]["strategy"], "steps are the user's now"
    assert decision.warnings == [
        "agentroll: the Rollout is not opted in (agentroll.dev/inject), so its composite version "
        "was removed: " + ", ".join(
            [f"metadata.labels[{k}]" for k in cv.VERSION_LABELS]
            + [f"spec.template.metadata.labels[{k}]" for k in cv.VERSION_LABELS]
            + [f"spec.template.metadata.annotations[{k}]" for k in (*cv.VERSION_LABELS, cv.TOOLS)])
    ]
    assert mutate(request(out), BUILTIN).patch == []


def test_hand_written_composite_label_on_a_rollout_that_is_not_opted_in_is_removed():
    obj = rollout(annotations={})
    obj["metadata"]["labels"] = {cv.COMPOSITE_VERSION: "forged0001", "team": "a"}
    decision = mutate(request(obj), BUILTIN)
    assert decision.patch == [{"op": "remove", "path": "/metadata/labels/agentroll.dev~1composite-version"}]
    assert jsonpatch.apply_patch(obj, decision.patch)["metadata"]["labels"] == {"team": "a"}


def test_hand_written_composite_label_on_an_agent_rollout_is_recomputed():
    obj = rollout()
    obj["metadata"]["labels"] = {cv.COMPOSITE_VERSION: "forged0001"}
    obj["spec"]["template"]["metadata"]["labels"][cv.COMPOSITE_VERSION] = "forged0001"
    decision = mutate(request(obj), BUILTIN)
    out = jsonpatch.apply_patch(obj, decision.patch)
    assert out["metadata"]["labels"][cv.COMPOSITE_VERSION] == decision.version.composite != "forged0001"
    assert out["spec"]["template"]["metadata"]["labels"][cv.COMPOSITE_VERSION] == decision.version.composite


def test_a_reapplied_rollout_gets_its_step_gates_back_next_to_the_injected_background_looks():
    """kubectl apply replaces the steps (the user's, without the injected analysis) but keeps the
    background analysis the webhook added at creation: the steps must be gated again."""
    _, created = admit(rollout())
    update = copy.deepcopy(created)
    update["spec"]["strategy"]["canary"]["steps"] = copy.deepcopy(steps_of(AGENT))
    update["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/example/support-agent:1.8.3"
    _, out = admit(update, operation="UPDATE", old=created)
    assert kinds(steps_of(out)).count("analysis") == 2
    assert out["spec"]["strategy"]["canary"]["analysis"] == created["spec"]["strategy"]["canary"]["analysis"]


def test_a_gate_named_by_annotation_or_by_policy_comes_without_the_default_looks():
    obj = rollout()
    obj["metadata"]["annotations"][cv.ANALYSIS] = "agent-quality"
    _, out = admit(obj)
    assert "analysis" not in out["spec"]["strategy"]["canary"]
    assert kinds(steps_of(out)).count("analysis") == 2
    own = policy_from_spec({"analysis": {"templates": [{"name": "mine"}]}})
    _, out = admit(rollout(), own)
    assert "analysis" not in out["spec"]["strategy"]["canary"]
    both = policy_from_spec({"analysis": {"templates": [{"name": "mine"}],
                                          "backgroundTemplates": [{"name": "mine-watch"}]}})
    _, out = admit(rollout(), both)
    assert out["spec"]["strategy"]["canary"]["analysis"]["templates"] == [
        {"templateName": "mine-watch", "clusterScope": True}]
