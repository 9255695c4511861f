"""Agent networks, pure parts: PEP 440 requirements, the graph rules, the index."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as s

from kubectl_agentroll import composite as cv
from kubectl_agentroll import network as net
from kubectl_agentroll.composite import AnnotationError
from kubectl_agentroll.requirements import RequirementError, canonical, parse_requirements
from tests.unit.rollouts import rollout

# -- requirements -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, version, ok", [
    (">=1.2.0,<2", "1.2.0", True),
    (">=1.2.0,<2", "1.9.7", True),
    (">=1.2.0,<2", "2.0.0", False),
    (">=1.2.0,<2", "1.1.9", False),
    (">=1.2.0,<2", "2.0.0rc1", False),   # PEP 440: <2 excludes pre-releases of 2
    (">=1.2", "1.3.0rc1", True),         # a running pre-release in range satisfies (our choice)
    ("~=2.0", "2.7.1", True),
    ("~=2.0", "3.0", False),
    ("==1.4.*", "1.4.9", True),
    ("!=1.5.0", "1.5.0", False),
    ("", "0.0.1", True),                 # a bare name: any version
    (">=1.0", "latest", False),          # not a PEP 440 version: satisfies nothing
    (">=1.0", "v1.2", True),             # PEP 440 normalises a leading v
])
def test_requirement_evaluation_is_pep_440(spec, version, ok):
    (requirement,) = parse_requirements(f"crm-mcp-server{spec}")
    assert requirement.satisfied_by(version) is ok


def test_requirements_parse_names_entries_and_canonical_form():
    parsed = parse_requirements(" search ~=2.0 ; crm-mcp-server>=1.2.0, <2 ;")
    assert [r.tool for r in parsed] == ["crm-mcp-server", "search"]
    assert canonical(parsed) == canonical(parse_requirements("crm-mcp-server<2,>=1.2.0;search~=2.0"))
    assert canonical(parse_requirements("@scope/server-github>=0.6")) == "@scope/server-github>=0.6"


@pytest.mark.parametrize("raw, says", [
    ("search^2.0", "~=2.0"),
    ("crm>=1.2;crm<2", "listed twice"),
    (">=1.2", "not a tool name"),
    ("crm>=one", "not a PEP 440 specifier"),
])
def test_bad_requirements_are_one_line_errors_naming_the_entry(raw, says):
    with pytest.raises(RequirementError, match=says) as err:
        parse_requirements(raw)
    assert "\n" not in str(err.value)


def test_a_changed_requirement_is_a_tools_layer_change_and_reordering_is_not():
    base = rollout()
    a = copy.deepcopy(base)
    a["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "crm-mcp-server>=1.2,<2; search~=2.0"
    b = copy.deepcopy(base)
    b["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "search ~= 2.0; crm-mcp-server<2,>=1.2"
    c = copy.deepcopy(base)
    c["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "crm-mcp-server>=1.3,<2; search~=2.0"
    va, vb, vc, v0 = (cv.composite_of(o) for o in (a, b, c, base))
    assert va.composite == vb.composite
    assert va.composite != vc.composite and va.composite != v0.composite
    assert [layer for layer, *_ in vc.changed_layers(va)] == ["tools"]
    assert v0.labels() == cv.composite_of(rollout()).labels()  # no requirements: hashes as before
    rebuilt = cv.composite_from_annotations(va.annotations())
    assert rebuilt.requirements == va.requirements and rebuilt.tools == va.tools


# -- the graph --------------------------------------------------------------------------------------


def test_find_cycle_names_the_path_back_to_the_start():
    edges = {"support": ["planner", "retriever"], "planner": ["retriever"], "retriever": ["support"]}
    assert net.find_cycle("support", edges) == ["support", "planner", "retriever", "support"]
    assert net.find_cycle("support", {"support": ["support"]}) == ["support", "support"]
    assert net.find_cycle("support", {"support": ["planner"], "planner": ["retriever"]}) is None
    # a cycle elsewhere that does not pass through the start is not this agent's to answer for
    assert net.find_cycle("support", {"support": ["a"], "a": ["b"], "b": ["a"]}) is None


names = s.sampled_from("abcdefg")


@given(s.dictionaries(names, s.lists(names, max_size=4), max_size=7), names)
def test_find_cycle_returns_a_real_cycle_exactly_when_the_start_can_reach_itself(edges, start):
    def reaches_itself() -> bool:
        seen, todo = set(), list(edges.get(start, ()))
        while todo:
            node = todo.pop()
            if node == start:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return False

    cycle = net.find_cycle(start, edges)
    assert (cycle is not None) == reaches_itself()
    if cycle:
        assert cycle[0] == cycle[-1] == start
        assert all(b in edges.get(a, ()) for a, b in zip(cycle, cycle[1:], strict=False))
        assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple path


def _agent(name, requirement=None, depends=(), phase="Healthy", in_flight=False, ns="agents"):
    reqs = parse_requirements(requirement) if requirement else ()
    return net.Agent(ns, name, reqs, tuple(depends), phase, "", in_flight)


def _server(version, name="crm", tool="crm-mcp-server", ns="agents"):
    return net.ToolServer(ns, "Deployment", name, tool, version)


def test_unmet_names_the_tool_the_requirement_and_what_runs():
    reqs = parse_requirements("crm-mcp-server>=1.2,<2; search~=2.0")
    servers = {"crm-mcp-server": [_server("2.1.0")], "search": []}
    problems = net.unmet(reqs, lambda tool: servers[tool], "namespace agents")
    assert problems == [
        "requires crm-mcp-server<2,>=1.2; running: 2.1.0 (deployment/crm)",
        "requires search~=2.0; no tool server 'search' runs in namespace agents",
    ]
    assert net.unmet(reqs, lambda tool: [_server("1.4.0"), _server("2.3", tool="search")], "x") == []


def test_broken_agents_only_those_an_update_takes_from_satisfied_to_unsatisfied():
    agents = [_agent("a", "crm-mcp-server>=1.2,<2"), _agent("b", "crm-mcp-server>=2"),
              _agent("c", "crm-mcp-server<1"), _agent("d", "search>=1")]
    assert net.broken_agents([_server("1.4")], [_server("2.0")], agents, "crm-mcp-server") == [
        "agents/a (crm-mcp-server<2,>=1.2)"]
    # another server still runs a satisfying version: nothing breaks
    assert net.broken_agents([_server("1.4"), _server("1.5", "crm2")], [_server("2.0"), _server("1.5", "crm2")],
                             agents, "crm-mcp-server") == []


@given(s.lists(s.sampled_from(["0.9", "1.2.0", "1.4", "2.0", "2.0rc1", "latest"]), max_size=3),
       s.lists(s.sampled_from(["0.9", "1.2.0", "1.4", "2.0", "2.0rc1", "latest"]), max_size=3),
       s.sampled_from([">=1.2,<2", ">=2", "~=1.0", "==1.4", ""]))
def test_broken_agents_agrees_with_the_definition(before, after, spec):
    agent = _agent("a", f"crm-mcp-server{spec}")
    (requirement,) = agent.requirements
    was = any(requirement.satisfied_by(v) for v in before)
    will = any(requirement.satisfied_by(v) for v in after)
    broken = net.broken_agents([_server(v) for v in before], [_server(v) for v in after], [agent],
                               "crm-mcp-server")
    assert bool(broken) == (was and not will)


def test_readiness_waits_for_each_dependency_not_settled_and_names_why():
    agents = {"planner": _agent("planner", in_flight=True, phase="Paused"),
              "retriever": _agent("retriever")}
    waiting = net.readiness(("planner", "retriever", "ghost"), agents)
    assert not waiting.ready
    assert [w.name for w in waiting.waiting_on] == ["planner", "ghost"]
    assert "planner Paused (mid-rollout)" in waiting.reason
    assert waiting.to_dict()["decision"] == "wait"
    assert net.readiness(("retriever",), agents).ready
    assert net.readiness((), agents).to_dict()["ready"] is True


# -- objects and the index --------------------------------------------------------------------------


def _deployment(name="crm", tool="crm-mcp-server", version=None, image="ghcr.io/x/crm:1.4.0", ns="agents"):
    annotations = {cv.TOOL_SERVER: tool} if tool else {}
    if version:
        annotations[cv.TOOL_SERVER_VERSION] = version
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations, "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "s", "image": image}]}}},
            "status": {"observedGeneration": 1, "updatedReplicas": 1}}


def test_tool_server_version_from_annotation_else_image_tag():
    assert net.tool_server_of(_deployment(), "Deployment").version == "1.4.0"
    assert net.tool_server_of(_deployment(version="1.5.0"), "Deployment").version == "1.5.0"
    assert net.tool_server_of(_deployment(tool=None), "Deployment") is None
    server = net.tool_server_of(_deployment(tool="@scope/server-github"), "Deployment")
    assert server.labels()[cv.TOOL_SERVER] != "@scope/server-github"  # sanitised to a label value
    assert cv.is_valid_label_value(server.labels()[cv.TOOL_SERVER])
    with pytest.raises(AnnotationError, match=cv.TOOL_SERVER):
        net.tool_server_of(_deployment(tool="has space"), "Deployment")
    with pytest.raises(AnnotationError, match=cv.TOOL_SERVER_VERSION):
        net.tool_server_of(_deployment(version=" "), "Deployment")


def test_depends_on_parses_names_and_refuses_what_is_not_one():
    assert net.depends_on_of({cv.DEPENDS_ON: "planner-agent, retriever-agent,planner-agent"}) == (
        "planner-agent", "retriever-agent")
    with pytest.raises(AnnotationError, match=cv.DEPENDS_ON):
        net.depends_on_of({cv.DEPENDS_ON: "Planner_Agent"})


def test_index_follows_sets_updates_deletes_and_relists():
    index = net.NetworkIndex()
    index.apply_tool_server("Deployment", _deployment())
    index.apply_tool_server("Deployment", _deployment(name="crm-b", image="ghcr.io/x/crm:1.5.0"))
    assert sorted(s.version for s in index.servers(["agents"], "crm-mcp-server")) == ["1.4.0", "1.5.0"]
    index.apply_tool_server("Deployment", _deployment(image="ghcr.io/x/crm:2.0.0"))  # an update
    assert sorted(s.version for s in index.servers(["agents"], "crm-mcp-server")) == ["1.5.0", "2.0.0"]
    index.apply_tool_server("Deployment", _deployment(tool="search"))  # it became another tool
    assert [s.version for s in index.servers(["agents"], "crm-mcp-server")] == ["1.5.0"]
    assert index.servers(["other"], "crm-mcp-server") == []
    index.apply_tool_server("Deployment", _deployment(name="crm-b"), deleted=True)
    assert index.servers(["agents"], "crm-mcp-server") == []

    agent = rollout()
    agent["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "crm-mcp-server>=1"
    agent["metadata"]["annotations"][cv.DEPENDS_ON] = "planner"
    index.apply_agent(agent)
    assert [a.name for a in index.requirers("crm-mcp-server")] == ["support-agent"]
    assert index.agents_in("agents")["support-agent"].depends_on == ("planner",)
    agent["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "search>=1"
    index.apply_agent(agent)
    assert index.requirers("crm-mcp-server") == [] and len(index.requirers("search")) == 1
    index.replace_rollouts([])  # a relist without it
    assert index.agent("agents", "support-agent") is None and index.requirers("search") == []
    assert [s.tool for s in index.tool_servers.values()] == ["search"]  # Deployments untouched


def test_index_skips_objects_whose_annotations_do_not_parse():
    bad = rollout()
    bad["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "crm^1"
    good = rollout()
    good["metadata"]["name"] = "good-agent"
    index = net.NetworkIndex.of([bad, good], [_deployment(tool="bad name"), _deployment(name="ok")])
    assert list(index.agents) == [("agents", "good-agent")]
    assert [key[2] for key in index.tool_servers] == ["ok"]


_agent_ops = s.tuples(s.sampled_from(["a", "b", "c"]), s.lists(s.sampled_from(["crm", "search", "mail"]),
                                                                max_size=2, unique=True), s.booleans())
_server_ops = s.tuples(s.sampled_from(["s1", "s2", "s3"]), s.sampled_from(["crm", "search"]),
                       s.sampled_from(["1.0", "2.0"]), s.booleans())


@given(s.lists(s.one_of(_agent_ops, _server_ops), max_size=25))
def test_index_kept_up_event_by_event_equals_the_index_built_from_the_end_state(events):
    index, agents, servers = net.NetworkIndex(), {}, {}
    for event in events:
        if len(event) == 3:
            name, tools, deleted = event
            obj = rollout()
            obj["metadata"]["name"] = name
            if tools:
                obj["metadata"]["annotations"][cv.TOOL_REQUIREMENTS] = "; ".join(f"{t}>=1" for t in tools)
            index.apply_agent(obj, deleted)
            agents.pop(name, None) if deleted else agents.__setitem__(name, obj)
        else:
            name, tool, version, deleted = event
            obj = _deployment(name=name, tool=tool, version=version)
            index.apply_tool_server("Deployment", obj, deleted)
            servers.pop(name, None) if deleted else servers.__setitem__(name, obj)
    fresh = net.NetworkIndex.of(agents.values(), servers.values())
    for tool in ("crm", "search", "mail"):
        assert sorted(index.servers(["agents"], tool), key=str) == sorted(fresh.servers(["agents"], tool), key=str)
        assert sorted(a.name for a in index.requirers(tool)) == sorted(a.name for a in fresh.requirers(tool))
    assert dict(index.agents_in("agents")) == dict(fresh.agents_in("agents"))
    assert index.tool_servers == fresh.tool_servers and index.agents == fresh.agents
