"""`kubectl agentroll deps` and the network parts of `status`, against the in-memory API server."""

from __future__ import annotations

import json

import pytest

from kubectl_agentroll import composite as cv
from tests.unit.fakekube import FakeCluster
from tests.unit.test_commands import run


def agent(name, requirements=None, depends=None, in_flight=False, composite="c0ffee1234"):
    annotations = {cv.INJECT: "true"}
    if requirements:
        annotations[cv.TOOL_REQUIREMENTS] = requirements
    if depends:
        annotations[cv.DEPENDS_ON] = depends
    status = {"phase": "Paused" if in_flight else "Healthy", "stableRS": "a",
              "currentPodHash": "b" if in_flight else "a"}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "agents", "annotations": annotations,
                         "labels": {cv.COMPOSITE_VERSION: composite}, "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}},
            "status": {"observedGeneration": "1", **status}}


def tool_server(name, tool, version, kind="Deployment"):
    return {"apiVersion": "apps/v1" if kind == "Deployment" else "argoproj.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "agents", "generation": 1,
                         "annotations": {cv.TOOL_SERVER: tool},
                         "labels": {cv.TOOL_SERVER: tool, cv.TOOL_SERVER_VERSION: version}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "s", "image": f"r/{name}:{version}"}]}}},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "phase": "Healthy",
                       "stableRS": "a", "currentPodHash": "a"}}


@pytest.fixture
def network() -> FakeCluster:
    """Three agents, two tool servers: support -> planner, retriever; planner needs crm (met),
    retriever needs search (unmet: 1.9 runs), planner is mid-rollout."""
    f = FakeCluster()
    f.put(agent("support", depends="planner,retriever"))
    f.put(agent("planner", requirements="crm-mcp-server>=1.2,<2", in_flight=True, composite="feedbeef01"))
    f.put(agent("retriever", requirements="search~=2.0"))
    f.put(tool_server("crm", "crm-mcp-server", "1.5.0"))
    f.put(tool_server("search", "search", "1.9.0", kind="Rollout"))
    return f


def test_deps_draws_the_three_agent_two_tool_server_network(network):
    result = run(network, "deps")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "REQUIRES", "STATE", "VERSION", "(RUNNING)", "NOTE"]
    assert lines[1].split()[:5] == ["⟳", "agent", "support", "-", "✔"]
    planner = next(line for line in lines if "agent planner" in line)
    assert planner.startswith("├── ⟳ agent planner") and "॥ Paused" in planner and "mid-rollout" in planner
    crm = next(line for line in lines if "tool crm-mcp-server" in line)
    assert crm.startswith("│   └── ⚙") and "<2,>=1.2" in crm and "✔ ok" in crm and "1.5.0 (deployment/crm)" in crm
    search = next(line for line in lines if "tool search" in line)
    assert search.startswith("    └── ⚙") and "✖ fail" in search and "1.9.0 (rollout/search)" in search
    assert len(lines) == 6  # header, support, planner, crm, retriever, search: nothing else, nothing twice


def test_deps_of_one_agent_and_as_data(network):
    one = run(network, "deps", "planner", "-o", "json")
    (node,) = json.loads(one.output)
    assert (node["name"], node["state"], node["in_flight"], node["version"]) == ("planner", "Paused", True,
                                                                               "feedbeef01")
    assert node["children"] == [{"kind": "tool", "name": "crm-mcp-server", "namespace": "agents",
                                 "version": "1.5.0 (deployment/crm)", "state": "met", "requirement": "<2,>=1.2",
                                 "in_flight": False, "note": "", "children": []}]
    assert run(network, "deps", "nobody").exit_code == 1


def test_deps_shows_unrequired_tool_servers_missing_dependencies_and_cycles():
    f = FakeCluster()
    f.put(agent("a", depends="b,ghost"))
    f.put(agent("b", depends="a"))
    f.put(tool_server("crm", "crm-mcp-server", "1.5.0"))
    data = json.loads(run(f, "deps", "-o", "json").output)
    assert [n["name"] for n in data] == ["a", "crm-mcp-server"]  # a cycle still shows, once at the top
    b = data[0]["children"][0]
    assert b["name"] == "b" and b["children"][0]["note"] == "cycle: already above"
    assert data[0]["children"][1]["state"] == "Missing"
    assert data[1]["kind"] == "tool-server" and "no agent requires it" in data[1]["note"]


def test_status_shows_requirements_next_to_what_runs(network):
    result = run(network, "status", "retriever")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("search"))
    assert row.split()[:4] == ["search", "~=2.0", "1.9.0", "(rollout/search)"] and "✖ fail" in row


def test_status_names_the_dependencies_the_gate_waits_on():
    from kubectl_agentroll.status import rollout_status
    from tests.unit.test_status import rollout_obj, run_obj

    run = run_obj(phase="Running", values=())
    answer = {"decision": "wait", "ready": False, "reason": "waiting on planner Paused (mid-rollout)",
              "waitingOn": [{"name": "planner", "phase": "Paused", "reason": "mid-rollout"}]}
    run["spec"]["metrics"] = [{"name": "dependencies-settled", "successCondition": "result.ready == true"}]
    run["status"]["metricResults"] = [{"name": "dependencies-settled", "phase": "Running", "count": 1,
                                       "failed": 1, "measurements": [{"phase": "Failed",
                                                                      "value": json.dumps(answer)}]}]
    model = rollout_status(rollout_obj(), [], [run])
    assert model.waiting_on == "waiting on planner Paused (mid-rollout)"
    assert model.analysis_runs[0].metrics[0].values == ["wait"]  # not the JSON, not a judge verdict
    assert model.analysis_runs[0].metrics[0].verdict is None
    run["status"]["phase"] = "Successful"
    assert rollout_status(rollout_obj(), [], [run]).waiting_on is None


def test_undo_restores_the_tool_requirements_with_the_other_layers():
    """Requirements are part of the tools layer: undo must put back the revision's (or remove
    today's when that revision had none), or the webhook would compute another composite version."""
    from dataclasses import replace

    from kubectl_agentroll.revisions import plan_undo
    from tests.unit.test_status import V1, rollout_obj, rs_obj

    with_requirements = replace(V1, requirements="crm-mcp-server<2,>=1.2")
    rollout = rollout_obj()
    ops = {op["path"]: op for op in plan_undo(rollout, rs_obj("abc", 1, with_requirements))}
    assert ops["/metadata/annotations/agentroll.dev~1tool-requirements"] == {
        "op": "add", "path": "/metadata/annotations/agentroll.dev~1tool-requirements",
        "value": "crm-mcp-server<2,>=1.2"}
    assert ops["/metadata/annotations/agentroll.dev~1tools"]["value"] == V1.tools_list  # the list alone
    rollout["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "crm-mcp-server>=3"
    ops = {op["path"]: op for op in plan_undo(rollout, rs_obj("abc", 1, V1))}
    assert ops["/metadata/annotations/agentroll.dev~1tool-requirements"]["op"] == "remove"
