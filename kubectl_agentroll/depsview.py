"""`kubectl agentroll deps`: the agent network as a tree (pure: a NetworkIndex in, nodes out).

Each agent shows its composite version and phase, then the tools it requires (the requirement, the
tool-server versions that run now, met or not) and the agents it depends on, expanded in turn. Tool
servers that no agent requires come last, so nothing that runs is left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kubectl_agentroll.network import Agent, NetworkIndex, ToolServer


@dataclass
class Node:
    kind: str  # agent | tool | tool-server
    name: str
    namespace: str
    version: str  # agent: composite version; tool: versions running; tool-server: its version
    state: str  # agent: its phase; tool: met | unmet; tool-server: Running | Rolling
    requirement: str = ""  # tool: the agent's requirement
    in_flight: bool = False  # mid-rollout now
    note: str = ""
    children: list[Node] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _servers(servers: list[ToolServer]) -> str:
    return ", ".join(f"{s.version} ({s.kind.lower()}/{s.name}{', rolling' if s.rolling else ''})"
                     for s in sorted(servers, key=lambda s: (s.version, s.name))) or "none running"


def _agent_node(agent: Agent, index: NetworkIndex, path: tuple[str, ...]) -> Node:
    node = Node("agent", agent.name, agent.namespace, agent.composite or "-", agent.phase,
                in_flight=agent.in_flight, note="mid-rollout" if agent.in_flight else "")
    for requirement in agent.requirements:
        servers = index.servers([agent.namespace], requirement.tool)
        met = any(requirement.satisfied_by(s.version) for s in servers)
        node.children.append(Node("tool", requirement.tool, agent.namespace, _servers(servers),
                                  "met" if met else "unmet", str(requirement.specifier) or "any",
                                  in_flight=any(s.rolling for s in servers)))
    for name in agent.depends_on:
        dependency = index.agent(agent.namespace, name)
        if dependency is None:
            node.children.append(Node("agent", name, agent.namespace, "-", "Missing",
                                      note="no agent Rollout of that name"))
        elif name in path:
            node.children.append(Node("agent", name, agent.namespace, dependency.composite or "-",
                                      dependency.phase, note="cycle: already above"))
        else:
            node.children.append(_agent_node(dependency, index, (*path, name)))
    return node


def deps_tree(index: NetworkIndex, namespace: str | None = None, name: str | None = None) -> list[Node]:
    """The network of one agent (`name`), or of every agent in `namespace` (None: all), each agent
    at the top that no other agent depends on (or all of a cycle's agents, so none goes missing)."""
    agents = [a for a in index.agents.values() if namespace is None or a.namespace == namespace]
    if name is not None:
        roots = [a for a in agents if a.name == name]
    else:
        called = {(a.namespace, d) for a in agents for d in a.depends_on}
        roots = [a for a in agents if (a.namespace, a.name) not in called]
        shown = _reachable(roots, index)
        for agent in sorted(agents, key=lambda a: (a.namespace, a.name)):  # cycles nobody calls into
            if (agent.namespace, agent.name) not in shown:
                roots.append(agent)
                shown |= _reachable([agent], index)
    nodes = [_agent_node(a, index, (a.name,)) for a in sorted(roots, key=lambda a: (a.namespace, a.name))]
    if name is None:
        required = {(a.namespace, r.tool) for a in agents for r in a.requirements}
        alone = [s for s in sorted(index.tool_servers.values(), key=lambda s: s.key)
                 if (namespace is None or s.namespace == namespace) and (s.namespace, s.tool) not in required]
        nodes += [Node("tool-server", s.tool, s.namespace, s.version, "Rolling" if s.rolling else "Running",
                       in_flight=s.rolling, note=f"{s.kind.lower()}/{s.name}; no agent requires it")
                  for s in alone]
    return nodes


def _reachable(roots: list[Agent], index: NetworkIndex) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    todo = list(roots)
    while todo:
        agent = todo.pop()
        if (agent.namespace, agent.name) in seen:
            continue
        seen.add((agent.namespace, agent.name))
        todo += [d for d in (index.agent(agent.namespace, n) for n in agent.depends_on) if d is not None]
    return seen
