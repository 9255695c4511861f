"""Policies from the cluster: AgentRollPolicies and Namespaces, listed and watched into a snapshot;
with a `NetworkIndex`, also Rollouts and tool-server Deployments (agent networks).

Admission never calls the API: `for_namespace` is a dict lookup in a namespace -> Policy map that
is recomputed (incrementally) whenever a policy or a namespace changes, so its cost does not grow
with the number of policies or namespaces. Two daemon threads run the blocking list + watch loops
of the `kubernetes` client (each relists on `410 Gone`, on errors with capped backoff, and every
`resync` seconds); they hand events to a `PolicyIndex` under a lock. Readers take no lock: they
read one dict, which writers replace or update key by key.

Resolution rules are `kubectl_agentroll.policy.resolve`: policies whose namespaceSelector selects
the namespace first (highest priority, then name), else selector-less default policies, else the
built-in defaults. An invalid policy is logged, reported as a Kubernetes Event when possible, and
skipped; it never stops the webhook.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone

from kubectl_agentroll.network import NetworkIndex
from kubectl_agentroll.policy import (
    BUILTIN,
    Policy,
    PolicyError,
    policy_from_spec,
    selector_matches,
)

log = logging.getLogger("agentroll.policywatch")

GROUP, VERSION, PLURAL, KIND = "agentroll.dev", "v1alpha1", "agentrollpolicies", "AgentRollPolicy"
TOOL_SERVER_SELECTOR = "agentroll.dev/tool-server"  # the label the webhook writes on tool servers
NAME_LABEL = "kubernetes.io/metadata.name"


def policy_from_object(obj: Mapping) -> Policy:
    """A Policy from an AgentRollPolicy object; PolicyError names the object and the field."""
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise PolicyError("metadata.name: expected a string")
    try:
        return policy_from_spec(obj.get("spec"), name=name)
    except PolicyError as err:
        raise PolicyError(f"AgentRollPolicy {name}: {err}") from None


def _rank(policy: Policy) -> tuple[int, str]:
    return (-policy.priority, policy.name)


class PolicyIndex:
    """Policies and namespace labels in, namespace -> governing Policy out (precomputed).

    Selecting policies are bucketed by one of their matchLabels pairs, so finding the winner for a
    namespace looks only at the policies that could select it (plus those without matchLabels).
    Not thread-safe for writers; `PolicyWatch` serialises them. `lookup` is safe from any thread.
    """

    def __init__(self, fallback: Policy = BUILTIN) -> None:
        self.fallback = fallback
        self.policies: dict[str, Policy] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self._buckets: dict[tuple[str, str], list[Policy]] = {}
        self._unbucketed: list[Policy] = []
        self._default: Policy = fallback
        self._assignment: dict[str, Policy] = {}

    # -- reading ---------------------------------------------------------------------------------
    def lookup(self, namespace: str | None) -> Policy:
        if namespace is None:  # cluster-scoped request: no namespace selection applies
            return self._default
        policy = self._assignment.get(namespace)
        if policy is None:  # a namespace the watch has not delivered yet
            policy = self._resolve({NAME_LABEL: namespace})
        return policy

    # -- the rule --------------------------------------------------------------------------------
    def _candidates(self, labels: Mapping[str, str]) -> Iterable[Policy]:
        yield from self._unbucketed
        for pair in labels.items():
            yield from self._buckets.get(pair, ())

    def _resolve(self, labels: Mapping[str, str]) -> Policy:
        best: Policy | None = None
        for policy in self._candidates(labels):
            if (best is None or _rank(policy) < _rank(best)) and selector_matches(
                policy.namespace_selector or {}, labels
            ):
                best = policy
        return best if best is not None else self._default

    def _rebuild_structure(self) -> None:
        buckets: dict[tuple[str, str], list[Policy]] = {}
        unbucketed, defaults = [], []
        for policy in self.policies.values():
            if policy.namespace_selector is None:
                defaults.append(policy)
                continue
            selected = replace(policy, selects_namespace=True)
            match_labels = policy.namespace_selector.get("matchLabels") or {}
            if match_labels:
                pair = min(match_labels.items())
                buckets.setdefault(pair, []).append(selected)
            else:
                unbucketed.append(selected)
        self._buckets, self._unbucketed = buckets, unbucketed
        self._default = (
            replace(min(defaults, key=_rank), selects_namespace=False) if defaults else self.fallback
        )

    def rebuild(self) -> None:
        """Recompute everything; the new map replaces the old one in one assignment."""
        self._rebuild_structure()
        self._assignment = {ns: self._resolve(labels) for ns, labels in self.namespaces.items()}

    # -- writing ---------------------------------------------------------------------------------
    def replace_all(self, policies: Iterable[Policy] | None = None,
                    namespaces: Mapping[str, Mapping[str, str]] | None = None) -> None:
        if policies is not None:
            self.policies = {p.name: p for p in policies}
        if namespaces is not None:
            self.namespaces = {name: dict(labels) for name, labels in namespaces.items()}
        self.rebuild()

    def set_policy(self, policy: Policy) -> None:
        old = self.policies.get(policy.name)
        if old == policy and old.namespace_selector == policy.namespace_selector:
            return
        self.policies[policy.name] = policy
        self._after_policy_change(policy.name, old)

    def delete_policy(self, name: str) -> None:
        old = self.policies.pop(name, None)
        if old is not None:
            self._after_policy_change(name, old)

    def _after_policy_change(self, name: str, old: Policy | None) -> None:
        new = self.policies.get(name)
        default_before = self._default
        self._rebuild_structure()
        if self._default != default_before or (old and old.namespace_selector is None) or (
            new and new.namespace_selector is None
        ):
            self.rebuild()  # the default tier changed: every unselected namespace may change
            return
        # Only namespaces the policy governed before, or selects now, can change.
        assignment = self._assignment
        for ns, labels in self.namespaces.items():
            current = assignment.get(ns)
            was_winner = current is not None and current.name == name
            selects_now = new is not None and selector_matches(new.namespace_selector or {}, labels)
            if was_winner or selects_now:
                assignment[ns] = self._resolve(labels)

    def set_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        labels = dict(labels)
        if self.namespaces.get(name) == labels and name in self._assignment:
            return
        self.namespaces[name] = labels
        self._assignment[name] = self._resolve(labels)

    def delete_namespace(self, name: str) -> None:
        self.namespaces.pop(name, None)
        self._assignment.pop(name, None)

    def assignment(self) -> dict[str, Policy]:
        return dict(self._assignment)


# -- the watch ----------------------------------------------------------------------------------


class Resource:
    """One listed and watched resource: how to list it and what to do with its objects."""

    def __init__(self, name: str, list_fn: Callable, on_list: Callable, on_event: Callable):
        self.name, self.list_fn, self.on_list, self.on_event = name, list_fn, on_list, on_event


class PolicyWatch:
    """The webhook's policy source when policies come from the cluster (`PolicySource`)."""

    def __init__(self, api_client=None, *, resync: float = 300.0, watch_timeout: int = 240,
                 backoff_max: float = 30.0, events: bool = True, fallback: Policy = BUILTIN,
                 network: NetworkIndex | None = None):
        self.api_client = api_client
        self.index = PolicyIndex(fallback)
        self.network = network
        self.invalid: dict[str, str] = {}
        self.resync = resync
        self.watch_timeout = watch_timeout
        self.backoff_max = backoff_max
        self.events = events
        self._lock = threading.Lock()
        self._loaded: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reported: set[tuple[str, str]] = set()
        self.generation = 0  # bumped on every applied change (tests, debugging)

    # PolicySource
    @property
    def ready(self) -> bool:
        wanted = {"policies", "namespaces"} | ({"rollouts", "deployments"} if self.network else set())
        return self._loaded >= wanted

    def for_namespace(self, namespace: str | None) -> Policy:
        return self.index.lookup(namespace)

    # -- applying objects (pure given the index; unit-tested) -------------------------------------
    def _parse(self, obj: Mapping) -> Policy | None:
        name = (obj.get("metadata") or {}).get("name", "?")
        try:
            policy = policy_from_object(obj)
        except PolicyError as err:
            message = str(err)
            if self.invalid.get(name) != message:
                log.warning("skipping invalid policy: %s", message)
                self._report_invalid(obj, message)
            self.invalid[name] = message
            return None
        self.invalid.pop(name, None)
        return policy

    def apply_policy_list(self, items: Iterable[Mapping]) -> None:
        policies = [p for p in (self._parse(o) for o in items) if p is not None]
        names = {(o.get("metadata") or {}).get("name") for o in items}
        self.invalid = {k: v for k, v in self.invalid.items() if k in names}
        with self._lock:
            self.index.replace_all(policies=policies)
            self._loaded.add("policies")
            self.generation += 1
        log.info("policies loaded: %d valid, %d invalid", len(policies), len(self.invalid))

    def apply_policy_event(self, kind: str, obj: Mapping) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        with self._lock:
            if kind == "DELETED":
                self.invalid.pop(name, None)
                self.index.delete_policy(name)
            else:
                policy = self._parse(obj)
                if policy is None:
                    self.index.delete_policy(name)  # an invalid update stops the old version too
                else:
                    self.index.set_policy(policy)
            self.generation += 1
        log.info("policy %s %s", name, kind.lower())

    def apply_namespace_list(self, items: Iterable[Mapping]) -> None:
        namespaces = {
            o["metadata"]["name"]: (o["metadata"].get("labels") or {}) for o in items
        }
        with self._lock:
            self.index.replace_all(namespaces=namespaces)
            self._loaded.add("namespaces")
            self.generation += 1
        log.info("namespaces loaded: %d", len(namespaces))

    def apply_namespace_event(self, kind: str, obj: Mapping) -> None:
        metadata = obj.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return
        with self._lock:
            if kind == "DELETED":
                self.index.delete_namespace(name)
            else:
                self.index.set_namespace(name, metadata.get("labels") or {})
            self.generation += 1

    def _network_handlers(self, name: str, apply_one: Callable[[Mapping, bool], None],
                          replace: Callable[[Iterable[Mapping]], None]) -> tuple[Callable, Callable]:
        def on_list(items: Iterable[Mapping]) -> None:
            with self._lock:
                replace(items)
                self._loaded.add(name)
                self.generation += 1

        def on_event(kind: str, obj: Mapping) -> None:
            with self._lock:
                apply_one(obj, kind == "DELETED")
                self.generation += 1

        return on_list, on_event

    def _network_resources(self, custom, apps) -> list[Resource]:
        network = self.network
        assert network is not None

        def one_rollout(obj: Mapping, deleted: bool) -> None:
            network.apply_agent(obj, deleted)
            network.apply_tool_server("Rollout", obj, deleted)

        def list_rollouts(**kw):
            return custom.list_cluster_custom_object("argoproj.io", "v1alpha1", "rollouts", **kw)

        def list_deployments(**kw):
            return apps.list_deployment_for_all_namespaces(label_selector=TOOL_SERVER_SELECTOR, **kw)

        return [
            Resource("rollouts", list_rollouts, *self._network_handlers(
                "rollouts", one_rollout, network.replace_rollouts)),
            Resource("deployments", list_deployments, *self._network_handlers(
                "deployments", lambda o, d: network.apply_tool_server("Deployment", o, d),
                network.replace_deployments)),
        ]

    # -- reporting --------------------------------------------------------------------------------
    def _report_invalid(self, obj: Mapping, message: str) -> None:
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("name")), str(metadata.get("resourceVersion")))
        if not self.events or self.api_client is None or key in self._reported:
            return
        self._reported.add(key)
        from kubernetes import client

        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{key[0]}.", "namespace": "default"},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": key[0],
                               "uid": metadata.get("uid"), "resourceVersion": key[1]},
            "reason": "InvalidPolicy",
            "message": f"{message}; the webhook ignores this policy"[:1024],
            "type": "Warning",
            "source": {"component": "agentroll-webhook"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            client.CoreV1Api(self.api_client).create_namespaced_event("default", event)
        except Exception as err:  # noqa: BLE001 - reporting is best effort
            log.debug("could not record an event for policy %s: %s", key[0], err)

    # -- list + watch loops -------------------------------------------------------------------------
    def _resources(self) -> list[Resource]:
        from kubernetes import client

        custom = client.CustomObjectsApi(self.api_client)
        core = client.CoreV1Api(self.api_client)

        def list_policies(**kw):
            return custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)

        resources = [
            Resource("policies", list_policies, self.apply_policy_list, self.apply_policy_event),
            Resource("namespaces", core.list_namespace, self.apply_namespace_list,
                     self.apply_namespace_event),
        ]
        if self.network is not None:
            resources += self._network_resources(custom, client.AppsV1Api(self.api_client))
        return resources

    def start(self) -> None:
        for resource in self._resources():
            thread = threading.Thread(target=self._run, args=(resource,),
                                      name=f"watch-{resource.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, resource: Resource) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._list_and_watch(resource)
                failures = 0
            except Exception as err:  # noqa: BLE001 - reconnect on anything, never die
                failures += 1
                delay = min(self.backoff_max, 0.5 * 2 ** min(failures, 8))
                delay *= 0.5 + random.random() / 2
                log.warning("%s watch failed (%s); relisting in %.1fs", resource.name,
                            str(err).splitlines()[0] if str(err) else repr(err), delay)
                self._stop.wait(delay)

    def _list_and_watch(self, resource: Resource) -> None:
        """List, then watch from the list's resourceVersion until the resync period is over.

        With `timeout_seconds` the client's `Watch.stream` makes one request: the API server ends it
        after that many seconds and the loop here watches again from the last resourceVersion. An
        ERROR event reaches us as ApiException (410 Gone: relist); anything else goes to `_run`,
        which backs off and relists. `_request_timeout` ends a watch whose server went silent.
        """
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        response = resource.list_fn(_preload_content=False, _request_timeout=60)
        body = json.loads(response.data)
        resource.on_list(body.get("items") or [])
        version = (body.get("metadata") or {}).get("resourceVersion")
        relist_at = time.monotonic() + self.resync
        while not self._stop.is_set():
            timeout = int(min(self.watch_timeout, relist_at - time.monotonic()))
            if timeout < 1:
                return
            try:
                for event in watch.Watch().stream(
                        resource.list_fn, resource_version=version, timeout_seconds=timeout,
                        allow_watch_bookmarks=True, _request_timeout=timeout + 30):
                    kind, obj = event["type"], event["raw_object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        resource.on_event(kind, obj)
                    if self._stop.is_set():
                        return
            except ApiException as err:
                if err.status == 410:
                    log.info("%s watch expired (410 Gone); relisting", resource.name)
                    return
                raise


def make_watch(kubeconfig: str | None = None, context: str | None = None, **kwargs) -> PolicyWatch:
    from kubectl_agentroll.kube import api_client

    return PolicyWatch(api_client(kubeconfig, context), **kwargs)
