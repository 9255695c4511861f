"""Agent networks at admission: the engine with a NetworkView (no HTTP, no cluster)."""

from __future__ import annotations

import copy
from dataclasses import replace

import jsonpatch

from kubectl_agentroll import composite as cv
from kubectl_agentroll import network as net
from kubectl_agentroll.mutate import mutate
from kubectl_agentroll.netadmit import NetworkView
from kubectl_agentroll.policy import BUILTIN, WARN, policy_from_spec
from tests.unit.rollouts import request, rollout


def deployment(version="1.4.0", name="crm", tool="crm-mcp-server", ns="agents"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "annotations": {cv.TOOL_SERVER: tool},
                         "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "s", "image": f"ghcr.io/x/{name}:{version}"}]}}}}


def agent(requirements=None, depends=None, name="support-agent"):
    obj = rollout()
    obj["metadata"]["name"] = name
    if requirements is not None:
        obj["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = requirements
    if depends is not None:
        obj["metadata"]["annotations"][cv.DEPENDS_ON] = depends
    return obj


def view(rollouts=(), deployments=(), policy=BUILTIN):
    return NetworkView(net.NetworkIndex.of(rollouts, deployments), lambda ns: policy)


def deploy_request(obj, operation="CREATE", old=None):
    return request(obj, operation, old, kind=("apps", "Deployment"))


def test_tool_server_deployment_is_labelled_on_object_and_pods():
    decision = mutate(deploy_request(deployment()), BUILTIN, view())
    assert decision.allowed
    out = jsonpatch.apply_patch(deployment(), decision.patch)
    want = {cv.TOOL_SERVER: "crm-mcp-server", cv.TOOL_SERVER_VERSION: "1.4.0"}
    assert out["metadata"]["labels"] == {"app": "crm", **want}
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "crm", **want}


def test_a_deployment_that_is_no_tool_server_is_left_alone_and_a_forged_label_removed():
    plain = deployment()
    del plain["metadata"]["annotations"][cv.TOOL_SERVER]
    assert mutate(deploy_request(plain), BUILTIN, view()).patch == []
    plain["metadata"]["labels"][cv.TOOL_SERVER_VERSION] = "9.9.9"
    decision = mutate(deploy_request(plain), BUILTIN, view())
    assert decision.patch == [{"op": "remove", "path": "/metadata/labels/agentroll.dev~1tool-server-version"}]
    assert "removed" in decision.warnings[0]


def test_agent_with_unmet_requirement_is_denied_naming_tool_requirement_and_versions():
    network = view(deployments=[deployment("2.1.0")])
    decision = mutate(request(agent("crm-mcp-server>=1.2,<2")), BUILTIN, network)
    assert not decision.allowed
    assert decision.message == (
        "agentroll: agentroll.dev/tool-requirements: requires crm-mcp-server<2,>=1.2; running: 2.1.0 "
        "(deployment/crm) [denied]")
    missing = mutate(request(agent("search~=2.0")), BUILTIN, network)
    assert "no tool server 'search' runs in namespace agents" in missing.message


def test_agent_whose_requirements_are_met_is_admitted_and_the_policy_can_make_unmet_a_warning():
    network = view(deployments=[deployment("1.4.0")])
    assert mutate(request(agent("crm-mcp-server>=1.2,<2")), BUILTIN, network).allowed
    warn = replace(BUILTIN, tool_requirements=WARN)
    decision = mutate(request(agent("crm-mcp-server>=2")), warn, network)
    assert decision.allowed and "warning only (policy)" in decision.warnings[-1]


def test_shared_tool_server_namespaces_from_the_policy():
    shared = policy_from_spec({"network": {"toolServerNamespaces": ["tools"]}})
    network = view(deployments=[deployment("1.4.0", ns="tools")], policy=shared)
    assert not mutate(request(agent("crm-mcp-server>=1")), BUILTIN, view(deployments=[
        deployment("1.4.0", ns="tools")])).allowed
    assert mutate(request(agent("crm-mcp-server>=1")), shared, network).allowed


def test_requirements_are_checked_only_when_they_change():
    """The Argo controller updates agent Rollouts all the time; a tool server gone since must not
    make those updates fail."""
    stored = agent("crm-mcp-server>=1.2")
    update = copy.deepcopy(stored)
    update["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/example/support-agent:1.9.0"
    assert mutate(request(update, "UPDATE", stored), BUILTIN, view()).allowed
    changed = agent("crm-mcp-server>=1.3")
    assert not mutate(request(changed, "UPDATE", stored), BUILTIN, view()).allowed


def test_tool_server_update_that_breaks_an_agent_is_denied_naming_it():
    requirer = agent("crm-mcp-server>=1.2,<2")
    network = view(rollouts=[requirer], deployments=[deployment("1.4.0")])
    decision = mutate(deploy_request(deployment("2.0.0"), "UPDATE", deployment("1.4.0")), BUILTIN, network)
    assert not decision.allowed
    assert decision.message == (
        "agentroll: agentroll.dev/tool-server-version: deployment/crm crm-mcp-server 1.4.0 -> "
        "crm-mcp-server 2.0.0 breaks the tool requirements of agents/support-agent "
        "(crm-mcp-server<2,>=1.2) [denied]")
    fine = mutate(deploy_request(deployment("1.5.0"), "UPDATE", deployment("1.4.0")), BUILTIN, network)
    assert fine.allowed
    assert {"op": "replace", "path": "/metadata/labels/agentroll.dev~1tool-server-version",
            "value": "1.5.0"} not in fine.patch  # the old object had no labels: it is an add
    out = jsonpatch.apply_patch(deployment("1.5.0"), fine.patch)
    assert out["metadata"]["labels"][cv.TOOL_SERVER_VERSION] == "1.5.0"


def test_tool_server_update_is_free_when_another_server_still_satisfies_or_policy_warns():
    requirer = agent("crm-mcp-server>=1.2,<2")
    network = view(rollouts=[requirer], deployments=[deployment("1.4.0"), deployment("1.4.1", name="crm-b")])
    assert mutate(deploy_request(deployment("2.0.0"), "UPDATE", deployment("1.4.0")), BUILTIN, network).allowed
    alone = view(rollouts=[requirer], deployments=[deployment("1.4.0")])
    warn = replace(BUILTIN, tool_requirements=WARN)
    decision = mutate(deploy_request(deployment("2.0.0"), "UPDATE", deployment("1.4.0")), warn, alone)
    assert decision.allowed and "breaks the tool requirements" in decision.warnings[0]


def test_dependency_cycle_is_denied_with_the_cycle_named():
    planner = agent(depends="retriever", name="planner")
    retriever = agent(depends="support-agent", name="retriever")
    network = view(rollouts=[planner, retriever])
    decision = mutate(request(agent(depends="planner")), BUILTIN, network)
    assert not decision.allowed
    assert decision.message == ("agentroll: agentroll.dev/depends-on: dependency cycle support-agent -> "
                                "planner -> retriever -> support-agent (an agent cannot wait for itself)")
    assert mutate(request(agent(depends="retriever-x")), BUILTIN, network).allowed


def _steps(obj, policy=BUILTIN, network=None, operation="CREATE", old=None):
    decision = mutate(request(obj, operation, old), policy, network)
    assert decision.allowed, decision.message
    return jsonpatch.apply_patch(obj, decision.patch)["spec"]["strategy"]["canary"]


def test_dependency_gate_goes_before_the_first_canary_step_once():
    canary = _steps(agent(depends="planner"))
    steps = canary["steps"]
    assert steps[0]["analysis"]["templates"] == [{"templateName": "agent-dependencies", "clusterScope": True}]
    assert "setWeight" in steps[1]
    assert sum("agent-dependencies" in str(step) for step in steps) == 1
    # the judge's background looks still start at the first canary step, after the gate
    assert canary["analysis"]["startingStep"] == 2
    # the stored object, admitted again (the controller's updates): nothing more is inserted
    stored = jsonpatch.apply_patch(agent(depends="planner"),
                                   mutate(request(agent(depends="planner")), BUILTIN, None).patch)
    again = mutate(request(copy.deepcopy(stored), "UPDATE", stored), BUILTIN, None)
    assert [op for op in again.patch if "steps" in op["path"]] == []


def test_dependency_gate_with_default_steps_and_with_own_analysis():
    no_steps = agent(depends="planner")
    no_steps["spec"]["strategy"] = {"canary": {}}
    steps = _steps(no_steps)["steps"]
    assert "agent-dependencies" in str(steps[0]) and steps[1] == {"setWeight": 5}
    own = agent(depends="planner")
    own["spec"]["strategy"]["canary"]["steps"].insert(2, {"analysis": {"templates": [{"templateName": "mine"}]}})
    steps = _steps(own)["steps"]
    assert "agent-dependencies" in str(steps[0]) and "mine" in str(steps[3])
    assert sum("agent-quality" in str(s) for s in steps) == 0  # its own analysis: no quality gates


def test_dependency_order_warn_injects_no_gate_and_warns_when_a_dependency_is_busy():
    busy = agent(name="planner")
    busy["status"] = {"phase": "Paused", "currentPodHash": "new", "stableRS": "old"}
    policy = replace(BUILTIN, dependency_order=WARN)
    decision = mutate(request(agent(depends="planner")), policy, view(rollouts=[busy]))
    assert decision.allowed
    out = jsonpatch.apply_patch(agent(depends="planner"), decision.patch)
    assert "agent-dependencies" not in str(out["spec"]["strategy"])
    assert any("planner Paused (mid-rollout)" in w and "does not wait" in w for w in decision.warnings)


def test_tool_server_rollout_that_is_also_an_agent_gets_both_label_sets():
    obj = agent()
    obj["metadata"]["annotations"][cv.TOOL_SERVER] = "support-tools"
    obj["metadata"].pop("labels", None)
    decision = mutate(request(obj), BUILTIN, view())
    out = jsonpatch.apply_patch(obj, decision.patch)
    labels = out["metadata"]["labels"]
    assert labels[cv.TOOL_SERVER] == "support-tools" and labels[cv.TOOL_SERVER_VERSION] == "1.8.2"
    assert cv.COMPOSITE_VERSION in labels


def test_requirements_removed_take_their_pod_template_copy_along():
    stored = jsonpatch.apply_patch(agent("crm-mcp-server>=1"), mutate(
        request(agent("crm-mcp-server>=1")), BUILTIN, None).patch)
    assert cv.TOOL_REQUIREMENTS in stored["spec"]["template"]["metadata"]["annotations"]
    update = copy.deepcopy(stored)
    del update["metadata"]["annotations"][cv.TOOL_REQUIREMENTS]
    out = jsonpatch.apply_patch(update, mutate(request(update, "UPDATE", stored), BUILTIN, None).patch)
    assert cv.TOOL_REQUIREMENTS not in out["spec"]["template"]["metadata"]["annotations"]
    assert out["metadata"]["labels"][cv.TOOLS_VERSION] != stored["metadata"]["labels"][cv.TOOLS_VERSION]


def test_bad_network_annotations_are_denied_naming_them():
    assert "agentroll.dev/tool-requirements: entry 'crm^1'" in mutate(
        request(agent("crm^1")), BUILTIN, view()).message
    assert "agentroll.dev/depends-on" in mutate(request(agent(depends="Bad_Name")), BUILTIN, view()).message
    bad = deployment()
    bad["metadata"]["annotations"][cv.TOOL_SERVER] = "two words"
    assert "agentroll.dev/tool-server" in mutate(deploy_request(bad), BUILTIN, view()).message


class _Cache:
    def __init__(self, rollouts, ready=True):
        self.network, self.ready = net.NetworkIndex.of(rollouts), ready


def test_dependencies_endpoint_answers_from_the_cache():
    from webhook.judgeserver import dependencies_answer

    busy = agent(name="planner")
    busy["status"] = {"phase": "Progressing", "currentPodHash": "new", "stableRS": "old"}
    cache = _Cache([agent(depends="planner"), busy])
    status, body = dependencies_answer({"namespace": "agents", "rollout": "support-agent"}, cache)
    assert status == 200 and body["ready"] is False and body["decision"] == "wait"
    assert body["waitingOn"] == [{"name": "planner", "phase": "Progressing", "reason": "mid-rollout"}]
    busy["status"] = {"phase": "Healthy", "currentPodHash": "new", "stableRS": "new"}
    status, body = dependencies_answer({"namespace": "agents", "rollout": "support-agent"},
                                       _Cache([agent(depends="planner"), busy]))
    assert (status, body["ready"], body["dependsOn"]) == (200, True, ["planner"])
    assert dependencies_answer({"namespace": "agents", "rollout": "nobody"}, cache)[0] == 404
    assert dependencies_answer({"namespace": "agents"}, cache) == (400, {"error": "rollout: required"})
    assert dependencies_answer({"namespace": "agents", "rollout": "x"}, None)[0] == 503
    assert dependencies_answer({"namespace": "agents", "rollout": "x"}, _Cache([], ready=False))[0] == 503
