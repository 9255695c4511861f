"""Admission rules of agent networks: requirements met, no update that breaks one, no cycles (pure).

The mutation engine asks these with a `NetworkView`: the webhook's in-memory index and the policy of
any namespace. What comes back are findings, one line each; the engine turns them into a denial or
warnings as the policy says (`spec.network`). A rule is checked only when what it is about changes
(an agent's requirements or dependencies, a tool server's version): updates that the Argo
controller makes to an agent's Rollout must never be refused for the state of other objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kubectl_agentroll import composite as cv
from kubectl_agentroll import network as net
from kubectl_agentroll import status as st
from kubectl_agentroll.policy import ENFORCE, WAIT, Policy
from kubectl_agentroll.requirements import declared


@dataclass(frozen=True)
class NetworkView:
    index: net.NetworkIndex
    policy_for: Callable[[str], Policy]

    def search_namespaces(self, agent_namespace: str) -> tuple[str, ...]:
        """Where an agent's tool servers may run: its namespace and its policy's shared ones."""
        return (agent_namespace, *self.policy_for(agent_namespace).tool_server_namespaces)


@dataclass
class Findings:
    denials: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, enforce: bool, message: str) -> None:
        (self.denials if enforce else self.warnings).append(message)


def check_agent(rollout: Mapping, old: Mapping | None, policy: Policy, view: NetworkView | None,
                depends_on: tuple[str, ...]) -> Findings:
    findings = Findings()
    annotations = st.annotations_of(rollout)
    namespace, name = net.namespace_and_name(rollout)
    requirements = declared(annotations)
    before = net.lenient(lambda o: declared(st.annotations_of(o)))(old)
    if view is not None and requirements and requirements != before:
        places = view.search_namespaces(namespace)
        where = "namespace " + " or ".join(places) if len(places) > 1 else f"namespace {namespace}"
        problems = net.unmet(requirements, lambda tool: view.index.servers(places, tool), where)
        if problems:
            mode = "denied" if policy.tool_requirements == ENFORCE else "warning only (policy)"
            findings.add(policy.tool_requirements == ENFORCE,
                         f"agentroll: {cv.TOOL_REQUIREMENTS}: {'; '.join(problems)} [{mode}]")
    old_depends = net.lenient(lambda o: net.depends_on_of(st.annotations_of(o)))(old)
    if view is not None and depends_on and name and depends_on != old_depends:
        edges = {n: a.depends_on for n, a in view.index.agents_in(namespace).items()}
        edges[name] = depends_on
        cycle = net.find_cycle(name, edges)
        if cycle:
            findings.denials.append(f"agentroll: {cv.DEPENDS_ON}: dependency cycle "
                                    f"{' -> '.join(cycle)} (an agent cannot wait for itself)")
    if view is not None and depends_on and policy.dependency_order != WAIT:
        readiness = net.readiness(depends_on, view.index.agents_in(namespace))
        if not readiness.ready:
            findings.warnings.append(f"agentroll: {cv.DEPENDS_ON}: {readiness.reason}; the canary "
                                     "does not wait (policy dependencyOrder: warn)")
    return findings


def check_tool_server(server: net.ToolServer, old: Mapping | None, policy: Policy,
                      view: NetworkView | None) -> Findings:
    """A tool server's new version (or tool) against the agents that require its tool."""
    findings = Findings()
    before = net.lenient(net.tool_server_of, server.kind)(old)
    if view is None or old is None or before is None or (before.tool, before.version) == (
            server.tool, server.version):
        return findings
    for tool in dict.fromkeys((before.tool, server.tool)):
        others = [s for s in view.index.servers([server.namespace], tool) if s.key != server.key]
        was = others + ([before] if before.tool == tool else [])
        will = others + ([server] if server.tool == tool else [])
        agents = [a for a in view.index.requirers(tool)
                  if server.namespace in view.search_namespaces(a.namespace)]
        broken = net.broken_agents(was, will, agents, tool)
        if broken:
            enforce = policy.tool_requirements == ENFORCE
            change = f"{before.tool} {before.version} -> {server.tool} {server.version}"
            findings.add(enforce, f"agentroll: {cv.TOOL_SERVER_VERSION}: {server.kind.lower()}/"
                                  f"{server.name} {change} breaks the tool requirements of "
                                  f"{', '.join(broken)} [{'denied' if enforce else 'warning only (policy)'}]")
    return findings
