"""Agent networks: tool servers, the agents that require them, and agents that depend on agents.

Pure: Kubernetes objects (dicts) in, facts and findings out. A tool server is a Rollout or a
Deployment annotated `agentroll.dev/tool-server: NAME`, versioned by `agentroll.dev/tool-server-version`
or else by its container's image tag, as agents are. An agent states the tool-server versions it
works with (`agentroll.dev/tool-requirements`, see `requirements.py`) and the agents it calls
(`agentroll.dev/depends-on`, Rollout names in its namespace). The webhook keeps a `NetworkIndex`
of both, fed by its watch, so admission reads memory and never the API server; `kubectl agentroll
deps` builds the same index from one list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubectl_agentroll import composite as cv
from kubectl_agentroll import status as st
from kubectl_agentroll.composite import AnnotationError
from kubectl_agentroll.policy import is_dns_subdomain
from kubectl_agentroll.requirements import Requirement, declared, is_tool_name

TOOL_SERVER_KINDS = ("Rollout", "Deployment")


@dataclass(frozen=True)
class ToolServer:
    namespace: str
    kind: str  # Rollout | Deployment
    name: str  # the object's name
    tool: str
    version: str
    rolling: bool = False  # a new version is being rolled out

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.kind, self.name)

    def labels(self) -> dict[str, str]:
        return {cv.TOOL_SERVER: cv.label_value(self.tool),
                cv.TOOL_SERVER_VERSION: cv.label_value(self.version)}


@dataclass(frozen=True)
class Agent:
    namespace: str
    name: str
    requirements: tuple[Requirement, ...] = ()
    depends_on: tuple[str, ...] = ()
    phase: str = "Healthy"
    message: str = ""
    in_flight: bool = False  # a canary (or preview) is running
    composite: str = ""  # its composite-version label

    @property
    def settled(self) -> bool:
        """Healthy and not mid-rollout: safe for an agent that calls it to start a canary."""
        return self.phase == "Healthy" and not self.in_flight

    def requirement(self, tool: str) -> Requirement | None:
        return next((r for r in self.requirements if r.tool == tool), None)


def namespace_and_name(obj: Mapping) -> tuple[str, str]:
    metadata = st.meta(obj)
    return str(metadata.get("namespace") or "default"), str(metadata.get("name") or "")


def tool_server_of(obj: Mapping, kind: str) -> ToolServer | None:
    """The tool server an object declares, None when it declares none; AnnotationError names the
    annotation at fault."""
    annotations = st.annotations_of(obj)
    tool = annotations.get(cv.TOOL_SERVER)
    if tool is None:
        return None
    if not isinstance(tool, str) or not is_tool_name(tool.strip()):
        raise AnnotationError(cv.TOOL_SERVER, f"{tool!r} is not a tool name (e.g. crm-mcp-server)")
    version = annotations.get(cv.TOOL_SERVER_VERSION)
    if version is not None and (not isinstance(version, str) or not version.strip()
                                or any(c.isspace() for c in version.strip())):
        raise AnnotationError(cv.TOOL_SERVER_VERSION, f"{version!r} is not a version")
    if version is None:
        container = cv.agent_container(obj)
        image = container.get("image") if container else None
        if not isinstance(image, str) or not image.strip():
            raise AnnotationError(cv.TOOL_SERVER_VERSION,
                                  "not set, and the container has no image to take the version from")
        version = cv.image_version(image.strip())
    namespace, name = namespace_and_name(obj)
    return ToolServer(namespace, kind, name, tool.strip(), version.strip(), _rolling(obj, kind))


def _rolling(obj: Mapping, kind: str) -> bool:
    if kind == "Rollout":
        return st.in_flight(obj) or not st._generation_observed(obj)
    status = st.status_of(obj)
    observed = st._int(status.get("observedGeneration"))
    replicas = st._int(st.spec_of(obj).get("replicas"), 1)
    stale = observed < st._int(st.meta(obj).get("generation"))
    return stale or st._int(status.get("updatedReplicas")) < replicas


def depends_on_of(annotations: Mapping) -> tuple[str, ...]:
    """The agent Rollouts an agent calls: `planner-agent,retriever-agent` (names, one namespace)."""
    raw = annotations.get(cv.DEPENDS_ON)
    if raw is None:
        return ()
    if not isinstance(raw, str):
        raise AnnotationError(cv.DEPENDS_ON, f"expected a string, got {type(raw).__name__}")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if not is_dns_subdomain(name):
            raise AnnotationError(cv.DEPENDS_ON, f"{name!r} is not a Rollout name (names of agent "
                                                 "Rollouts in this namespace, comma-separated)")
    return tuple(dict.fromkeys(names))


def agent_of(rollout: Mapping) -> Agent | None:
    """The network facts of an agent Rollout; None for a Rollout that is no agent."""
    if not st.is_opted_in(rollout):
        return None
    annotations = st.annotations_of(rollout)
    namespace, name = namespace_and_name(rollout)
    phase, message = st.rollout_phase(rollout)
    return Agent(namespace, name, declared(annotations), depends_on_of(annotations), phase,
                 message, st.in_flight(rollout), str(st.labels_of(rollout).get(cv.COMPOSITE_VERSION, "")))


# -- the index ------------------------------------------------------------------------------------


class NetworkIndex:
    """Tool servers and agents in, lookups out. Writers (one watch thread at a time) never change a
    collection a reader may be iterating: they publish new inner dicts, so readers take no lock."""

    def __init__(self) -> None:
        self.tool_servers: dict[tuple[str, str, str], ToolServer] = {}
        self.agents: dict[tuple[str, str], Agent] = {}
        self._by_tool: dict[tuple[str, str], dict[tuple[str, str, str], ToolServer]] = {}
        self._requirers: dict[str, dict[tuple[str, str], Agent]] = {}
        self._by_namespace: dict[str, dict[str, Agent]] = {}

    # -- reading ----------------------------------------------------------------------------------
    def servers(self, namespaces: Iterable[str], tool: str) -> list[ToolServer]:
        return [s for ns in dict.fromkeys(namespaces) for s in self._by_tool.get((ns, tool), {}).values()]

    def requirers(self, tool: str) -> list[Agent]:
        return list(self._requirers.get(tool, {}).values())

    def agent(self, namespace: str, name: str) -> Agent | None:
        return self.agents.get((namespace, name))

    def agents_in(self, namespace: str) -> Mapping[str, Agent]:
        return self._by_namespace.get(namespace, {})

    # -- writing ----------------------------------------------------------------------------------
    def set_tool_server(self, server: ToolServer) -> None:
        """Add or update; an update publishes the new entry before it withdraws the old one, so a
        reader never sees the server missing."""
        old = self.tool_servers.get(server.key)
        if old == server:
            return
        self.tool_servers[server.key] = server
        slot = (server.namespace, server.tool)
        self._by_tool[slot] = {**self._by_tool.get(slot, {}), server.key: server}
        if old is not None and old.tool != server.tool:
            self._withdraw_server(old)

    def delete_tool_server(self, key: tuple[str, str, str]) -> None:
        old = self.tool_servers.pop(key, None)
        if old is not None:
            self._withdraw_server(old)

    def _withdraw_server(self, old: ToolServer) -> None:
        slot = (old.namespace, old.tool)
        self._by_tool[slot] = {k: v for k, v in self._by_tool.get(slot, {}).items() if k != old.key}

    def set_agent(self, agent: Agent) -> None:
        """Add or update, new entries before stale ones go (as for tool servers)."""
        key = (agent.namespace, agent.name)
        old = self.agents.get(key)
        if old == agent:
            return
        self.agents[key] = agent
        for requirement in agent.requirements:
            self._requirers[requirement.tool] = {**self._requirers.get(requirement.tool, {}), key: agent}
        self._by_namespace[agent.namespace] = {**self._by_namespace.get(agent.namespace, {}),
                                               agent.name: agent}
        if old is not None:
            kept = {r.tool for r in agent.requirements}
            self._withdraw_requirements(key, [r.tool for r in old.requirements if r.tool not in kept])

    def delete_agent(self, key: tuple[str, str]) -> None:
        old = self.agents.pop(key, None)
        if old is None:
            return
        self._withdraw_requirements(key, [r.tool for r in old.requirements])
        self._by_namespace[old.namespace] = {
            k: v for k, v in self._by_namespace.get(old.namespace, {}).items() if k != old.name}

    def _withdraw_requirements(self, key: tuple[str, str], tools: Iterable[str]) -> None:
        for tool in tools:
            self._requirers[tool] = {k: v for k, v in self._requirers.get(tool, {}).items() if k != key}

    def replace_tool_servers(self, kind: str, servers: Iterable[ToolServer]) -> None:
        """All tool servers of one kind at once (a relist): built aside, then published."""
        tool_servers = {k: v for k, v in self.tool_servers.items() if k[1] != kind}
        tool_servers.update((s.key, s) for s in servers)
        by_tool: dict[tuple[str, str], dict[tuple[str, str, str], ToolServer]] = {}
        for server in tool_servers.values():
            by_tool.setdefault((server.namespace, server.tool), {})[server.key] = server
        self._by_tool, self.tool_servers = by_tool, tool_servers

    def replace_agents(self, agents: Iterable[Agent]) -> None:
        """All agents at once (a relist): built aside, then published."""
        fresh = NetworkIndex()
        for agent in agents:
            fresh.set_agent(agent)
        self._requirers, self._by_namespace, self.agents = fresh._requirers, fresh._by_namespace, fresh.agents

    # -- from objects (lenient: what the API server stored was admitted already) -------------------
    def apply_tool_server(self, kind: str, obj: Mapping, deleted: bool = False) -> None:
        namespace, name = namespace_and_name(obj)
        server = None if deleted else lenient(tool_server_of, kind)(obj)
        if server is None:
            self.delete_tool_server((namespace, kind, name))
        else:
            self.set_tool_server(server)

    def apply_agent(self, rollout: Mapping, deleted: bool = False) -> None:
        namespace, name = namespace_and_name(rollout)
        agent = None if deleted else lenient(agent_of)(rollout)
        if agent is None:
            self.delete_agent((namespace, name))
        else:
            self.set_agent(agent)

    def replace_rollouts(self, rollouts: Iterable[Mapping]) -> None:
        rollouts = list(rollouts)
        self.replace_agents(a for a in map(lenient(agent_of), rollouts) if a is not None)
        self.replace_tool_servers("Rollout", tool_servers_among("Rollout", rollouts))

    def replace_deployments(self, deployments: Iterable[Mapping]) -> None:
        self.replace_tool_servers("Deployment", tool_servers_among("Deployment", deployments))

    @classmethod
    def of(cls, rollouts: Iterable[Mapping] = (), deployments: Iterable[Mapping] = ()) -> NetworkIndex:
        index = cls()
        index.replace_rollouts(rollouts)
        index.replace_deployments(deployments)
        return index


def tool_servers_among(kind: str, objects: Iterable[Mapping]) -> list[ToolServer]:
    """The tool servers among stored objects of one kind (those whose annotations parse)."""
    return [s for s in map(lenient(tool_server_of, kind), objects) if s is not None]


def lenient(read: Callable, *kind: str) -> Callable[[Mapping | None], object]:
    """`read`, with None for no object or one whose annotations do not parse (stored before a check)."""
    def one(obj: Mapping | None):
        if obj is None:
            return None
        try:
            return read(obj, *kind)
        except AnnotationError:
            return None
    return one


# -- the rules ------------------------------------------------------------------------------------


def _versions(servers: Sequence[ToolServer]) -> str:
    return ", ".join(f"{s.version} ({s.kind.lower()}/{s.name})" for s in
                     sorted(servers, key=lambda s: (s.version, s.name)))


def unmet(requirements: Iterable[Requirement], servers_of: Callable[[str], Sequence[ToolServer]],
          where: str) -> list[str]:
    """One line per requirement no running tool-server version satisfies."""
    problems = []
    for requirement in requirements:
        servers = servers_of(requirement.tool)
        if any(requirement.satisfied_by(s.version) for s in servers):
            continue
        wanted = f"{requirement.tool}{requirement.specifier}" if str(requirement.specifier) else \
            f"{requirement.tool} (any version)"
        running = f"running: {_versions(servers)}" if servers else \
            f"no tool server {requirement.tool!r} runs in {where}"
        problems.append(f"requires {wanted}; {running}")
    return problems


def broken_agents(before: Sequence[ToolServer], after: Sequence[ToolServer],
                  agents: Iterable[Agent], tool: str) -> list[str]:
    """Agents whose requirement on `tool` the running versions `before` satisfy and `after` no
    longer do: what a tool-server update would break, with the requirement each agent states."""
    broken = []
    for agent in agents:
        requirement = agent.requirement(tool)
        if requirement is None:
            continue
        was = any(requirement.satisfied_by(s.version) for s in before)
        if was and not any(requirement.satisfied_by(s.version) for s in after):
            broken.append(f"{agent.namespace}/{agent.name} ({requirement})")
    return sorted(broken)


def find_cycle(start: str, edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency path from `start` back to itself (`[start, ..., start]`), or None."""
    path: list[str] = [start]
    on_path = {start}
    done: set[str] = set()
    iterators = [iter(edges.get(start, ()))]
    while iterators:
        following = next(iterators[-1], None)
        if following is None:
            iterators.pop()
            done.add(path[-1])
            on_path.discard(path.pop())
            continue
        if following == start:
            return [*path, start]
        if following in on_path or following in done:
            continue
        path.append(following)
        on_path.add(following)
        iterators.append(iter(edges.get(following, ())))
    return None


@dataclass(frozen=True)
class Waiting:
    name: str
    phase: str
    reason: str


@dataclass(frozen=True)
class Readiness:
    """Whether an agent may start its canary: every agent it calls is settled."""

    ready: bool
    reason: str
    waiting_on: tuple[Waiting, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"decision": "ready" if self.ready else "wait", "ready": self.ready, "reason": self.reason,
                "waitingOn": [vars(w) for w in self.waiting_on]}


def readiness(depends_on: Sequence[str], agents: Mapping[str, Agent]) -> Readiness:
    waiting = []
    for name in depends_on:
        dependency = agents.get(name)
        if dependency is None:
            waiting.append(Waiting(name, "Missing", "no agent Rollout of that name in this namespace"))
        elif not dependency.settled:
            why = "mid-rollout" if dependency.in_flight else (dependency.message or dependency.phase)
            waiting.append(Waiting(name, dependency.phase, why))
    if not depends_on:
        return Readiness(True, "depends on no agent")
    if not waiting:
        return Readiness(True, f"every dependency is Healthy: {', '.join(depends_on)}")
    detail = "; ".join(f"{w.name} {w.phase} ({w.reason})" for w in waiting)
    return Readiness(False, f"waiting on {detail}", tuple(waiting))


@dataclass(frozen=True)
class RequirementRow:
    """One requirement of an agent next to the tool-server versions that run now (for `status`)."""

    tool: str
    requirement: str
    running: tuple[str, ...]  # "1.5.0 (deployment/crm)"
    satisfied: bool


def requirement_rows(rollout: Mapping, servers: Iterable[ToolServer]) -> list[RequirementRow]:
    try:
        requirements = declared(st.annotations_of(rollout))
    except AnnotationError:
        return []
    by_tool: dict[str, list[ToolServer]] = {}
    for server in servers:
        by_tool.setdefault(server.tool, []).append(server)
    rows = []
    for requirement in requirements:
        running = sorted(by_tool.get(requirement.tool, []), key=lambda s: (s.version, s.name))
        rows.append(RequirementRow(requirement.tool, str(requirement.specifier) or "any",
                                   tuple(f"{s.version} ({s.kind.lower()}/{s.name})" for s in running),
                                   any(requirement.satisfied_by(s.version) for s in running)))
    return rows
