"""`kubectl agentroll inject`: the engine offline, over multi-document YAML."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "agent-rollout.yaml"
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "agent"}, "spec": {"ports": [{"port": 80}]}}


def run(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "kubectl_agentroll", *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_example_is_injected():
    result = run("inject", "-f", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    (rollout,) = yaml.safe_load_all(result.stdout)
    labels = rollout["spec"]["template"]["metadata"]["labels"]
    assert labels["agentroll.dev/prompt-version"] == "support-v7"
    assert labels["agentroll.dev/model-version"] == "claude-sonnet-4-20250514"
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [next(iter(s)) for s in steps].count("analysis") == 2
    assert "&id" not in result.stdout and "*id" not in result.stdout  # no YAML aliases for tools to trip on


def test_other_documents_pass_through_unchanged_and_order_is_kept():
    rollout = yaml.safe_load(EXAMPLE.read_text())
    stdin = yaml.safe_dump_all([SERVICE, rollout, SERVICE])
    result = run("inject", "-f", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Service", "Rollout", "Service"]
    assert docs[0] == SERVICE and docs[2] == SERVICE
    assert docs[1]["metadata"]["labels"]["agentroll.dev/composite-version"]


def test_list_documents_are_looked_into():
    rollout = yaml.safe_load(EXAMPLE.read_text())
    stdin = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [SERVICE, rollout]})
    result = run("inject", "-f", "-", stdin=stdin)
    (doc,) = yaml.safe_load_all(result.stdout)
    assert doc["items"][1]["metadata"]["labels"]["agentroll.dev/prompt-version"] == "support-v7"


def test_json_output():
    result = run("-o", "json", "inject", "-f", str(EXAMPLE))
    assert json.loads(result.stdout)["kind"] == "Rollout"


def test_output_and_namespace_flags_also_follow_the_command_and_connection_flags_do_not():
    before = run("-n", "agents", "-o", "json", "inject", "-f", str(EXAMPLE))
    after = run("inject", "-f", str(EXAMPLE), "-n", "agents", "-o", "json")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout and json.loads(after.stdout)["kind"] == "Rollout"
    offline = run("inject", "--help").stdout
    assert "--output" in offline and "--namespace" in offline and "--kubeconfig" not in offline


def test_warnings_go_to_stderr():
    rollout = yaml.safe_load(EXAMPLE.read_text())
    del rollout["metadata"]["annotations"]["agentroll.dev/prompt-version"]
    result = run("inject", "-f", "-", stdin=yaml.safe_dump(rollout))
    assert result.returncode == 0
    assert "Warning: Rollout/support-agent: agentroll: undeclared layer(s) recorded as 'unset': prompt" in result.stderr
    assert yaml.safe_load(result.stdout)["metadata"]["labels"]["agentroll.dev/prompt-version"] == "unset"


def test_denial_exits_1_with_nothing_on_stdout():
    good = yaml.safe_load(EXAMPLE.read_text())
    bad = yaml.safe_load(EXAMPLE.read_text())
    bad["metadata"]["name"] = "broken"
    bad["metadata"]["annotations"]["agentroll.dev/container"] = "sidecar"
    result = run("inject", "-f", "-", stdin=yaml.safe_dump_all([good, bad]))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: Rollout/broken: agentroll: agentroll.dev/container: no container named 'sidecar' "
        "in spec.template.spec.containers (have: agent, otel-collector)"
    )


def test_bad_yaml_and_missing_file_are_one_line_errors(tmp_path):
    result = run("inject", "-f", "-", stdin="a: [unclosed")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "not valid YAML" in result.stderr
    result = run("inject", "-f", str(tmp_path / "nope.yaml"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "nope.yaml" in result.stderr


def test_policy_file(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: agentroll.dev/v1alpha1\nkind: AgentRollPolicy\nmetadata: {name: strict}\n"
                      "spec:\n  analysis:\n    templates: [strict-quality]\n")
    result = run("inject", "-f", str(EXAMPLE), "--policy-file", str(policy))
    steps = yaml.safe_load(result.stdout)["spec"]["strategy"]["canary"]["steps"]
    assert steps[2]["analysis"]["templates"] == [{"templateName": "strict-quality", "clusterScope": True}]
    policy.write_text("analysis: {mode: sometimes}\n")
    result = run("inject", "-f", str(EXAMPLE), "--policy-file", str(policy))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Error: --policy-file {policy}: spec.analysis.mode: expected inject-if-absent or always-append"
    ]
