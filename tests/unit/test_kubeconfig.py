"""The kubeconfig reader: its YAML subset reads what kubectl writes exactly as PyYAML does, steps aside
for anything else, and kubectl's connection flags apply on top."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as hs

from kubectl_agentroll.kube import KubeError
from kubectl_agentroll.kubeconfig import Flags, load_target, parse_duration, parse_simple_yaml

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
    """Any document: the subset answers what PyYAML answers, or None; block-style documents made only
    of what kubectl writes it must answer itself."""
    if style == "json":
        text = json.dumps(tree)
    else:
        text = yaml.safe_dump(tree, default_flow_style=style == "flow", indent=indent,
                              allow_unicode=unicode, sort_keys=False, width=10**9)
    parsed = parse_simple_yaml(text)
    must = style == "block" and _kubectl_shaped(tree)
    event(f"kubectl-shaped block document: {must}; read by the subset: {parsed is not None}")
    if must:
        assert parsed is not None, text
    assert parsed is None or parsed == yaml.safe_load(text)


def test_load_target_reads_the_subset_and_merges(tmp_path, monkeypatch):
    first = tmp_path / "a"
    first.write_text(KUBECONFIG)
    second = tmp_path / "b"
    second.write_text("current-context: other\ncontexts:\n- name: other\n  context:\n    cluster: x\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # importing PyYAML now fails: the subset must do
    target = load_target(Flags(kubeconfig=f"{first}:{second}"))
    assert target.server == "https://127.0.0.1:6443" and target.namespace == "agents"
    assert target.token == "abc.def" and target.ca_data.startswith(b"-----BEGIN CERTIFICATE")


# What kubectl and client-go write: block style, keys of [a-z0-9._/-] (never words YAML reads as
# booleans or null), strings plain when they start with a letter, quoted (without escapes) when YAML
# would read them as something else (a plain scalar starting with a digit, a sign or an indicator is
# outside the subset: PyYAML reads those), non-negative integers, booleans,
# null, {} and [], lists of scalars or mappings (never of lists), and no line folding (Go's yaml does not fold). Every such document must be read
# by the subset itself, exactly as PyYAML reads it.
_WORDS = {"yes", "no", "on", "off", "true", "false", "null", "y", "n"}
_STRING_CHARS = frozenset("abcdefghijkXYZ0123456789:/._-=+ @#,[]{}!&*?|>%`~")
_kube_keys = hs.text(alphabet=hs.sampled_from("abcdefghijklmnopqrstuvwxyz-_./0123456789"), min_size=1,
                     max_size=12).filter(lambda k: k[0].isalpha() and k.lower() not in _WORDS)
# strings YAML would read as something else, which PyYAML therefore quotes
_QUOTED = ["", "yes", "No", "on", "0755", "1:20", "2024-01-01", "1.5", "0x1f", "-1", "- x", "a: b",
           "x #y", "null", "~", "true", "@x", "[a]", "{b}", "!t", "*a", "&a", "|", ">", "%", "`", " x", "x "]
_kube_strings = hs.text(alphabet=hs.sampled_from(sorted(_STRING_CHARS)), max_size=40).filter(
    lambda t: t == "" or t[0].isalpha())
_kube_values = hs.one_of(hs.none(), hs.booleans(), hs.integers(0, 10**9), _kube_strings,
                         hs.sampled_from(_QUOTED))
_kube_trees = hs.recursive(_kube_values, lambda inner: hs.one_of(
    hs.lists(inner.filter(lambda v: not isinstance(v, list)), max_size=3),
                                                                 hs.dictionaries(_kube_keys, inner, max_size=4)),
                           max_leaves=30)


def _kubectl_shaped(tree) -> bool:
    """The tree holds only what _kube_trees generates (what kubectl writes)."""
    if isinstance(tree, dict):
        return all(isinstance(k, str) and k and k[0].isalpha() and k.lower() not in _WORDS
                   and set(k) <= set("abcdefghijklmnopqrstuvwxyz-_./0123456789") and _kubectl_shaped(v)
                   for k, v in tree.items())
    if isinstance(tree, list):  # of scalars or mappings: kubeconfigs hold no lists of lists
        return all(not isinstance(v, list) and _kubectl_shaped(v) for v in tree)
    if isinstance(tree, bool) or tree is None:
        return True
    if isinstance(tree, int):
        return 0 <= tree <= 10**9
    return isinstance(tree, str) and (tree in _QUOTED or set(tree) <= _STRING_CHARS and tree[0].isalpha())


def _kubectl_style(tree, indent: int) -> str:
    return yaml.safe_dump(tree, default_flow_style=False, indent=indent, sort_keys=False, width=10**9)


@settings(max_examples=400, deadline=None)
@given(hs.dictionaries(_kube_keys, _kube_trees, min_size=1, max_size=6), hs.sampled_from([2, 4]))
def test_kubeconfig_shaped_documents_are_read_by_the_subset_like_pyyaml(tree, indent):
    text = _kubectl_style(tree, indent)
    parsed = parse_simple_yaml(text)
    assert parsed is not None, text
    assert parsed == yaml.safe_load(text) == tree


@settings(max_examples=200, deadline=None)
@given(hs.dictionaries(_kube_keys, _kube_trees, min_size=1, max_size=6))
def test_a_real_kubeconfig_with_generated_extras_never_needs_pyyaml(extras):
    doc = yaml.safe_load(KUBECONFIG)
    doc["preferences"] = extras
    parsed = parse_simple_yaml(_kubectl_style(doc, 2))
    assert parsed is not None and parsed == doc


def test_connection_flags_override_the_kubeconfig(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG + """\
  - name: other-user
    user:
      token: other
""".replace("  - name", "- name").replace("    user:", "  user:").replace("      token", "    token"))
    target = load_target(Flags(kubeconfig=str(path), token="flag-token", insecure_skip_tls_verify=True,
                               impersonate="alice", impersonate_groups=("ops", "dev"), request_timeout=5))
    assert (target.token, target.insecure, target.impersonate) == ("flag-token", True, "alice")
    assert target.impersonate_groups == ("ops", "dev") and target.timeout == 5
    assert load_target(Flags(kubeconfig=str(path), user="other-user")).token == "other"
    (tmp_path / "ca.pem").write_text("a CA")
    ca = load_target(Flags(kubeconfig=str(path), certificate_authority=str(tmp_path / "ca.pem")))
    assert ca.ca_file == str(tmp_path / "ca.pem") and ca.ca_data is None
    with pytest.raises(KubeError, match="--user nobody"):
        load_target(Flags(kubeconfig=str(path), user="nobody"))
    with pytest.raises(KubeError, match="--cluster nowhere"):
        load_target(Flags(kubeconfig=str(path), cluster="nowhere"))


CERT_USER = """\
apiVersion: v1
clusters:
- name: c
  cluster:
    server: https://10.0.0.1:6443
    tls-server-name: api.internal
    insecure-skip-tls-verify: true
contexts:
- name: c
  context:
    cluster: c
    user: u
current-context: c
users:
- name: u
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
    as: kube-admin
    as-uid: uid-0
"""


@pytest.fixture
def cert_kubeconfig(tmp_path):
    path = tmp_path / "config"
    path.write_text(CERT_USER)
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text(name)
    return path


def test_server_overrides_the_cluster_and_drops_its_tls_server_name(cert_kubeconfig):
    plain = load_target(Flags(kubeconfig=str(cert_kubeconfig)))
    assert (plain.server, plain.tls_server_name) == ("https://10.0.0.1:6443", "api.internal")
    moved = load_target(Flags(kubeconfig=str(cert_kubeconfig), server="https://127.0.0.1:7443/"))
    assert (moved.server, moved.tls_server_name) == ("https://127.0.0.1:7443", None)
    named = load_target(Flags(kubeconfig=str(cert_kubeconfig), server="https://127.0.0.1:7443",
                              tls_server_name="kubernetes"))
    assert named.tls_server_name == "kubernetes"
    assert load_target(Flags(kubeconfig=str(cert_kubeconfig), tls_server_name="other")).tls_server_name == "other"


def test_server_alone_needs_no_kubeconfig(tmp_path):
    with pytest.raises(KubeError, match="no current-context"):
        load_target(Flags(kubeconfig=str(tmp_path / "absent")))
    target = load_target(Flags(kubeconfig=str(tmp_path / "absent"), server="http://127.0.0.1:8001"))
    assert (target.server, target.namespace, target.token) == ("http://127.0.0.1:8001", "default", None)


def test_certificate_authority_replaces_the_clusters_trust_settings(cert_kubeconfig, tmp_path):
    ca = str(tmp_path / "ca.pem")
    assert load_target(Flags(kubeconfig=str(cert_kubeconfig))).insecure
    target = load_target(Flags(kubeconfig=str(cert_kubeconfig), certificate_authority=ca))
    assert (target.ca_file, target.ca_data, target.insecure) == (ca, None, False)


def test_client_certificate_and_key_replace_the_users(cert_kubeconfig, tmp_path):
    plain = load_target(Flags(kubeconfig=str(cert_kubeconfig)))
    assert (plain.cert_data, plain.key_data, plain.cert_file) == (b"cert", b"key", None)
    cert, key = str(tmp_path / "client.pem"), str(tmp_path / "client.key")
    target = load_target(Flags(kubeconfig=str(cert_kubeconfig), client_certificate=cert, client_key=key))
    assert (target.cert_file, target.cert_data, target.key_file, target.key_data) == (cert, None, key, None)
    with pytest.raises(KubeError, match="without its key: give --client-key"):
        load_target(Flags(kubeconfig=str(cert_kubeconfig), token="t", client_certificate=cert))
    with pytest.raises(KubeError, match="without its certificate: give --client-certificate"):
        load_target(Flags(kubeconfig=str(cert_kubeconfig), token="t", client_key=key))


@pytest.mark.parametrize("flag", ["certificate_authority", "client_certificate", "client_key"])
def test_a_missing_file_is_one_line_naming_the_flag(cert_kubeconfig, tmp_path, flag):
    with pytest.raises(KubeError) as err:
        load_target(Flags(kubeconfig=str(cert_kubeconfig), **{flag: str(tmp_path / "nope.pem")}))
    assert str(err.value) == f"--{flag.replace('_', '-')} {tmp_path / 'nope.pem'}: no such file"


def test_a_missing_file_named_by_the_kubeconfig_is_one_line(tmp_path):
    path = tmp_path / "config"
    path.write_text(CERT_USER.replace("client-certificate-data: Y2VydA==", "client-certificate: gone.pem"))
    with pytest.raises(KubeError, match=f"^kubeconfig: client-certificate {tmp_path / 'gone.pem'}: no such file$"):
        load_target(Flags(kubeconfig=str(path)))


def test_impersonation_from_the_kubeconfig_and_the_flags(cert_kubeconfig):
    from kubectl_agentroll.rest import Rest

    plain = load_target(Flags(kubeconfig=str(cert_kubeconfig)))
    assert (plain.impersonate, plain.impersonate_uid) == ("kube-admin", "uid-0")
    target = load_target(Flags(kubeconfig=str(cert_kubeconfig), impersonate="alice", impersonate_uid="uid-1",
                               impersonate_groups=("ops",)))
    assert (target.impersonate, target.impersonate_uid, target.impersonate_groups) == ("alice", "uid-1", ("ops",))
    headers = Rest(replace(target, cert_data=None, key_data=None))._headers(None)  # no real certificate here
    assert (headers["Impersonate-User"], headers["Impersonate-Uid"]) == ("alice", "uid-1")


def test_a_uid_or_group_without_a_user_to_impersonate_is_refused(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    for flags in ({"impersonate_uid": "uid-1"}, {"impersonate_groups": ("ops",)}):
        with pytest.raises(KubeError, match="needs a user to impersonate"):
            load_target(Flags(kubeconfig=str(path), **flags))


def test_username_and_password_flags(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG.replace("    token: abc.def\n", ""))
    target = load_target(Flags(kubeconfig=str(path), username="bob", password="pw"))
    assert (target.username, target.password) == ("bob", "pw")


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("30", 30), ("30s", 30), ("1m", 60), ("1h", 3600),
                                               ("500ms", 0.5), ("1.5m", 90)])
def test_durations_as_kubectl_writes_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1s", "1d", "m"])
def test_bad_durations_name_the_flag(text):
    with pytest.raises(ValueError, match="--timeout"):
        parse_duration(text, "--timeout")
