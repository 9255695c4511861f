"""The pure parts of the cluster policy watch: parsing objects, the index and its snapshot."""

from __future__ import annotations

import json
import random

import pytest

from kubectl_agentroll.policy import BUILTIN, PolicyError, policy_from_spec, resolve
from webhook.policywatch import PolicyIndex, PolicyWatch, Resource, policy_from_object


def obj(name, spec=None, rv="1"):
    return {"apiVersion": "agentroll.dev/v1alpha1", "kind": "AgentRollPolicy",
            "metadata": {"name": name, "resourceVersion": rv}, "spec": spec or {}}


def ns(name, **labels):
    return {"metadata": {"name": name,
                         "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def loaded(policies=(), namespaces=()) -> PolicyWatch:
    watch = PolicyWatch(events=False)
    watch.apply_policy_list(list(policies))
    watch.apply_namespace_list(list(namespaces))
    return watch


def test_not_ready_until_both_lists_are_loaded():
    watch = PolicyWatch(events=False)
    assert watch.ready is False
    watch.apply_policy_list([])
    assert watch.ready is False
    watch.apply_namespace_list([])
    assert watch.ready is True


def test_invalid_policy_is_named_and_skipped_while_valid_ones_apply():
    bad = obj("broken", {"namespaceSelector": {"matchExpressions": [{"key": "a",
                                                                     "operator": "Near"}]}})
    good = obj("agents", {"namespaceSelector": {"matchLabels": {"agents": "yes"}}})
    watch = loaded([bad, good], [ns("team-a", agents="yes")])
    assert watch.ready
    assert "broken" in watch.invalid
    assert "spec.namespaceSelector.matchExpressions[0].operator" in watch.invalid["broken"]
    assert watch.for_namespace("team-a").name == "agents"


def test_policy_from_object_names_the_policy():
    with pytest.raises(PolicyError, match=r"^AgentRollPolicy p: spec.priority: expected"):
        policy_from_object(obj("p", {"priority": "high"}))


def test_policy_change_is_applied_to_the_snapshot():
    watch = loaded([obj("agents", {"namespaceSelector": {"matchLabels": {"agents": "yes"}},
                                   "allowedTemplates": ["agent-quality"]})],
                   [ns("team-a", agents="yes"), ns("team-b")])
    assert watch.for_namespace("team-a").selects_namespace
    assert watch.for_namespace("team-b") is BUILTIN

    watch.apply_policy_event("MODIFIED", obj("agents", {
        "namespaceSelector": {"matchLabels": {"agents": "yes"}},
        "allowedTemplates": ["agent-quality", "agent-safety"]}, rv="2"))
    assert watch.for_namespace("team-a").allows("agent-safety")

    watch.apply_policy_event("DELETED", obj("agents"))
    assert watch.for_namespace("team-a") is BUILTIN


def test_invalid_update_withdraws_the_previous_version():
    selector = {"namespaceSelector": {"matchLabels": {"agents": "yes"}}}
    watch = loaded([obj("agents", selector)], [ns("team-a", agents="yes")])
    watch.apply_policy_event("MODIFIED", obj("agents", {**selector, "priority": "x"}, rv="2"))
    assert watch.for_namespace("team-a") is BUILTIN
    assert "agents" in watch.invalid


def test_namespace_label_change_moves_it_between_policies():
    watch = loaded([obj("agents", {"namespaceSelector": {"matchLabels": {"agents": "yes"}}})],
                   [ns("team-a")])
    assert watch.for_namespace("team-a") is BUILTIN
    watch.apply_namespace_event("MODIFIED", ns("team-a", agents="yes"))
    assert watch.for_namespace("team-a").name == "agents"
    watch.apply_namespace_event("DELETED", ns("team-a", agents="yes"))
    # Unknown namespace: resolved from its name label only.
    assert watch.for_namespace("team-a") is BUILTIN


def test_unknown_namespace_is_resolved_by_its_name_label():
    by_name = obj("one", {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["fresh"]}]}})
    watch = loaded([by_name], [])
    assert watch.for_namespace("fresh").name == "one"


def test_default_policy_governs_unselected_namespaces_without_opting_in():
    watch = loaded([obj("default", {"allowedTemplates": ["agent-quality"]})], [ns("team-a")])
    chosen = watch.for_namespace("team-a")
    assert (chosen.name, chosen.selects_namespace) == ("default", False)
    assert watch.for_namespace(None).name == "default"


def _random_labels(rng):
    return {f"k{rng.randrange(4)}": f"v{rng.randrange(3)}" for _ in range(rng.randrange(4))}


def _random_selector(rng):
    choice = rng.randrange(4)
    if choice == 0:
        return None
    selector = {}
    if rng.random() < 0.7:
        selector["matchLabels"] = {f"k{rng.randrange(4)}": f"v{rng.randrange(3)}"}
    if rng.random() < 0.5:
        op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        expr = {"key": f"k{rng.randrange(4)}", "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = [f"v{rng.randrange(3)}"]
        selector["matchExpressions"] = [expr]
    return selector


def test_incremental_index_always_equals_resolve_from_scratch():
    rng = random.Random(7)
    index = PolicyIndex()
    index.replace_all([], {})
    for step in range(400):
        action = rng.randrange(4)
        if action == 0:
            name = f"p{rng.randrange(8)}"
            spec = {"priority": rng.randrange(3)}
            selector = _random_selector(rng)
            if selector is not None:
                spec["namespaceSelector"] = selector
            index.set_policy(policy_from_spec(spec, name=name))
        elif action == 1:
            index.delete_policy(f"p{rng.randrange(8)}")
        elif action == 2:
            index.set_namespace(f"ns{rng.randrange(12)}", _random_labels(rng))
        else:
            index.delete_namespace(f"ns{rng.randrange(12)}")
        policies = list(index.policies.values())
        for name, labels in index.namespaces.items():
            expected = resolve(policies, labels)
            got = index.lookup(name)
            assert (got.name, got.selects_namespace) == (expected.name,
                                                        expected.selects_namespace), step


def test_serve_refuses_policy_file_with_watch(tmp_path):
    from click.testing import CliRunner

    from webhook.cli import main

    for name in ("tls.crt", "tls.key", "policy.yaml"):
        (tmp_path / name).write_text("")
    result = CliRunner().invoke(main, [
        "serve", "--tls-cert-file", str(tmp_path / "tls.crt"),
        "--tls-private-key-file", str(tmp_path / "tls.key"),
        "--policy-file", str(tmp_path / "policy.yaml"), "--watch-policies"])
    assert result.exit_code != 0
    assert "--policy-file and --watch-policies exclude each other" in result.output


def test_serve_names_an_unusable_kubeconfig(tmp_path):
    from click.testing import CliRunner

    from webhook.cli import main

    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("")
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    result = CliRunner().invoke(main, [
        "serve", "--tls-cert-file", str(tmp_path / "tls.crt"),
        "--tls-private-key-file", str(tmp_path / "tls.key"),
        "--kubeconfig", str(tmp_path / "kubeconfig")])
    assert result.exit_code != 0
    assert "--watch-policies: kubeconfig:" in result.output


# -- the list + watch loop against the real `kubernetes` Watch, over a scripted transport ----------


class _Response:
    """What a `_preload_content=False` call returns: a list body, or a watch stream of lines."""

    def __init__(self, data: bytes = b"", lines: list[dict] = ()):
        self.status, self.data, self.lines = 200, data, list(lines)

    def stream(self, amt=None, decode_content=False):
        for line in self.lines:
            yield (json.dumps(line) + "\n").encode()

    def close(self):
        pass

    def release_conn(self):
        pass


class _Api:
    """A list function: each call takes the next scripted list body or watch stream."""

    def __init__(self, lists: list[dict], watches: list[list[dict]], on_exhausted=None):
        self.lists, self.watches, self.on_exhausted = list(lists), list(watches), on_exhausted
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        """:return: object"""
        self.calls.append(kwargs)
        if kwargs.get("watch"):
            if not self.watches:
                self.on_exhausted()
                return _Response()
            return _Response(lines=self.watches.pop(0))
        return _Response(data=json.dumps(self.lists.pop(0)).encode())


def _event(kind, name, rv):
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": rv,
                                                  "labels": {"kubernetes.io/metadata.name": name}}}}


def _run_namespaces(api: _Api, watch: PolicyWatch) -> None:
    resource = Resource("namespaces", api, watch.apply_namespace_list, watch.apply_namespace_event)
    watch._list_and_watch(resource)


def test_a_watch_the_server_ends_is_resumed_from_the_last_resource_version():
    watch = PolicyWatch(events=False, watch_timeout=60)
    api = _Api(
        lists=[{"metadata": {"resourceVersion": "10"}, "items": []}],
        watches=[[_event("ADDED", "team-a", "11")],            # ends: the server's timeout
                 [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}],
                 [_event("DELETED", "team-a", "13")]],
        on_exhausted=watch._stop.set,
    )
    _run_namespaces(api, watch)
    watches = [c for c in api.calls if c.get("watch")]
    assert [c["resource_version"] for c in watches] == ["10", "11", "12", "13"]
    assert all(c["timeout_seconds"] == 60 for c in watches)
    assert len(api.calls) - len(watches) == 1, "a watch that ends is not a reason to relist"
    assert "team-a" not in watch.index.namespaces


def test_410_gone_ends_the_watch_for_a_relist():
    watch = PolicyWatch(events=False)
    api = _Api(lists=[{"metadata": {"resourceVersion": "5"}, "items": []}],
               watches=[[_event("ADDED", "team-a", "6"),
                         {"type": "ERROR", "object": {"code": 410, "reason": "Expired",
                                                      "message": "too old resource version"}}]])
    _run_namespaces(api, watch)  # returns, so that _run lists again
    assert "team-a" in watch.index.namespaces


def test_other_error_events_go_to_the_backoff_loop():
    from kubernetes.client.exceptions import ApiException

    watch = PolicyWatch(events=False)
    api = _Api(lists=[{"metadata": {"resourceVersion": "5"}, "items": []}],
               watches=[[{"type": "ERROR", "object": {"code": 500, "reason": "InternalError",
                                                      "message": "etcd is down"}}]])
    with pytest.raises(ApiException) as err:
        _run_namespaces(api, watch)
    assert err.value.status == 500


def test_the_resync_period_ends_in_a_relist_without_a_watch():
    watch = PolicyWatch(events=False, resync=0.5)
    api = _Api(lists=[{"metadata": {"resourceVersion": "5"}, "items": [ns("team-a")]}], watches=[])
    _run_namespaces(api, watch)
    assert [c.get("watch") for c in api.calls] == [None]
    assert watch.ready is False and "team-a" in watch.index.namespaces


def test_run_relists_after_a_failure_with_backoff():
    watch = PolicyWatch(events=False, backoff_max=0.01)
    failures = []

    def on_exhausted():
        watch._stop.set()

    api = _Api(lists=[{"metadata": {"resourceVersion": "5"}, "items": []},
                      {"metadata": {"resourceVersion": "9"}, "items": [ns("team-b")]}],
               watches=[[{"type": "ERROR", "object": {"code": 500, "reason": "x", "message": "y"}}]],
               on_exhausted=on_exhausted)
    original = api.__call__

    def list_fn(**kwargs):
        """:return: object"""
        if not failures and not kwargs.get("watch"):
            failures.append(1)
            raise OSError("connection refused")
        return original(**kwargs)

    watch._run(Resource("namespaces", list_fn, watch.apply_namespace_list,
                        watch.apply_namespace_event))
    assert "team-b" in watch.index.namespaces
    assert [c.get("resource_version") for c in api.calls if c.get("watch")] == ["5", "9"]
