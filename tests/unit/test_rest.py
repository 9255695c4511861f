"""The kubeconfig reader of the REST transport: its YAML subset agrees with PyYAML or steps aside."""

from __future__ import annotations

import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as hs

from kubectl_agentroll.rest import load_target, parse_simple_yaml

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: false
  name: kind-agents
# a comment line
contexts:
- context:
    cluster: kind-agents
    namespace: "agents"
    user: 'kind-agents'
  name: kind-agents
current-context: kind-agents
preferences: {}
users:
- name: kind-agents
  user:
    token: abc.def
    extensions: []
"""


def test_a_kubectl_written_kubeconfig_is_read_without_pyyaml():
    parsed = parse_simple_yaml(KUBECONFIG)
    assert parsed is not None and parsed == yaml.safe_load(KUBECONFIG)
    assert parsed["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is False


def test_indented_sequences_and_nested_items():
    text = "a:\n  - x: 1\n    y:\n      - p\n      - q\n  -\n    z: true\nb: ~\n"
    assert parse_simple_yaml(text) == yaml.safe_load(text) == {
        "a": [{"x": 1, "y": ["p", "q"]}, {"z": True}], "b": None}


def test_anything_outside_the_subset_is_left_to_pyyaml():
    for text in ["a: {b: 1}\n", "a: &x 1\nb: *x\n", "a: |\n  text\n", "a: 0755\n", "a: yes\n",
                 "a: 1.5\n", "a: 2024-01-01\n", "a: 'it''s'\n", 'a: "tab\\t"\n', "a: b # c\n",
                 "true: 1\n", "a: long\n  folded\n", "- a\n", "---\na: 1\n", "a:\n\t- b\n", "a: b\na: c\n"]:
        assert parse_simple_yaml(text) is None, text


_keys = hs.one_of(hs.sampled_from(["name", "cluster", "user", "server", "true", "1", "-a", "a b",
                                   "a:b", "null", "yes", "x.y/z", "~", "0"]),
                  hs.text(min_size=1, max_size=8))
_scalars = hs.one_of(hs.none(), hs.booleans(), hs.integers(-10**6, 10**6), hs.floats(allow_nan=False),
                     hs.text(max_size=30),
                     hs.sampled_from(["", "yes", "No", "on", "0755", "1:20", "2024-01-01", "https://h:1",
                                      "a: b", "- x", "#x", "x #y", "'q'", '"d"', "{}", "[]", "~", "null"]))
_trees = hs.recursive(_scalars, lambda inner: hs.one_of(hs.lists(inner, max_size=4),
                                                        hs.dictionaries(_keys, inner, max_size=4)),
                      max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(hs.dictionaries(_keys, _trees, min_size=1, max_size=5), hs.sampled_from([2, 4]),
       hs.booleans(), hs.sampled_from(["block", "flow", "json"]))
def test_agrees_with_pyyaml_or_steps_aside(tree, indent, unicode, style):
    if style == "json":
        text = json.dumps(tree)
    else:
        text = yaml.safe_dump(tree, default_flow_style=style == "flow", indent=indent,
                              allow_unicode=unicode, sort_keys=False)
    parsed = parse_simple_yaml(text)
    assert parsed is None or parsed == yaml.safe_load(text)


def test_load_target_reads_the_subset_and_merges(tmp_path):
    first = tmp_path / "a"
    first.write_text(KUBECONFIG)
    second = tmp_path / "b"
    second.write_text("current-context: other\ncontexts: [{name: other, context: {cluster: x}}]\n")
    target = load_target(f"{first}:{second}", None)
    assert target.server == "https://127.0.0.1:6443" and target.namespace == "agents"
    assert target.token == "abc.def" and target.ca_data.startswith(b"-----BEGIN CERTIFICATE")


_kube_keys = hs.text(alphabet=hs.sampled_from("abcdefghijklmnopqrstuvwxyz-_."), min_size=1, max_size=12)
_kube_values = hs.one_of(hs.none(), hs.booleans(), hs.integers(0, 10**9),
                         hs.text(alphabet=hs.sampled_from("abcdefghijkXYZ0123456789:/._-=+ @"), max_size=40))
_kube_trees = hs.recursive(_kube_values, lambda inner: hs.one_of(hs.lists(inner, max_size=3),
                                                                 hs.dictionaries(_kube_keys, inner, max_size=4)),
                           max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(hs.dictionaries(_kube_keys, _kube_trees, min_size=1, max_size=6), hs.sampled_from([2, 4]))
def test_kubeconfig_shaped_documents_read_like_pyyaml(tree, indent):
    text = yaml.safe_dump(tree, default_flow_style=False, indent=indent, sort_keys=False)
    parsed = parse_simple_yaml(text)
    assert parsed is None or parsed == yaml.safe_load(text)
