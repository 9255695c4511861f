"""Every cluster command, run through click against the in-memory API server (tests/unit/fakekube.py)."""

from __future__ import annotations

import _thread
import copy
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kubectl_agentroll import cli
from kubectl_agentroll import composite as cv
from tests.unit.fakekube import FakeCluster
from tests.unit.test_status import (
    CANARY_HASH,
    STABLE_HASH,
    V1,
    V2_PROMPT,
    rollout_obj,
    rs_obj,
    run_obj,
)

REPO = Path(__file__).resolve().parents[2]
INCONCLUSIVE_PAUSE = {"pauseConditions": [{"reason": "InconclusiveAnalysisRun"}], "controllerPause": True,
                      "canary": {"currentStepAnalysisRunStatus": {"name": "support-agent-5f4c9d8b7-2-0",
                                                                  "status": "Inconclusive"}}}


def pod_obj(hash_: str, n: int, ready: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"support-agent-{hash_}-{n}", "namespace": "agents",
                         "creationTimestamp": "2025-01-01T10:00:00Z",
                         "labels": {"app": "support-agent", "rollouts-pod-template-hash": hash_}},
            "spec": {"containers": [{"name": "agent"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "agent", "ready": ready,
                                                                   "restartCount": 0}]}}


def webhook(obj: dict, _old) -> dict:
    """What the admission webhook does to a Rollout's labels, enough for the fake."""
    version = cv.composite_of(obj)
    obj.setdefault("metadata", {}).setdefault("labels", {}).update(version.labels())
    template = obj["spec"]["template"].setdefault("metadata", {})
    template.setdefault("labels", {}).update(version.labels())
    template.setdefault("annotations", {}).update(version.annotations())
    return obj


@pytest.fixture
def fake() -> FakeCluster:
    """A canary paused at step 1: stable rev 1 (V1), canary rev 2 (prompt changed), pods, a run."""
    f = FakeCluster()
    rollout = rollout_obj()
    rollout["metadata"]["annotations"].update({cv.MODEL: V2_PROMPT.model, cv.TOOLS: V2_PROMPT.tools_list})
    f.put(rollout)
    f.put(rs_obj(STABLE_HASH, 1, V1))
    f.put(rs_obj(CANARY_HASH, 2, V2_PROMPT, replicas=1))
    for n in range(2):
        f.put(pod_obj(STABLE_HASH, n))
    f.put(pod_obj(CANARY_HASH, 0, ready=False))
    f.put(run_obj(phase="Successful", values=("0.95",), metric_phase="Successful", hash_=STABLE_HASH,
                  name="support-agent-6b9d8f7c4-1-0"))
    return f


def run(fake: FakeCluster, *args: str):
    result = CliRunner().invoke(cli.main, ["-n", "agents", *args], obj=cli.Globals(api=fake))
    assert "Traceback" not in result.output
    return result


def rollout_of(fake: FakeCluster) -> dict:
    return fake.get("rollouts", "agents", "support-agent")


# --- status ------------------------------------------------------------------------------------------


def test_status_shows_layers_analysis_and_the_revision_tree(fake):
    result = run(fake, "status", "support-agent")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "support-v1" in out and "support-v2" in out and "changed" in out
    assert "# revision:2  canary" in out and "# revision:1  stable" in out
    assert f"support-agent-{CANARY_HASH}-0" in out and "ready:0/1" in out and "◌ Running" in out
    assert f"support-agent-{STABLE_HASH}-1" in out and "✔ Running" in out
    assert "support-agent-6b9d8f7c4-1-0" in out and "AnalysisRun" in out
    assert "\x1b[" not in out  # not a terminal: no colour
    gets = [p for m, p, _ in fake.requests if m == "GET"]
    assert len(gets) == 4  # the Rollout, its ReplicaSets, AnalysisRuns and pods


def test_status_list_reads_only_the_replicasets_of_rollouts_not_settled(fake):
    settled = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy", version=V1)
    settled["metadata"].update(name="settled-agent", uid="settled-uid")
    fake.put(settled)
    fake.put(rs_obj(STABLE_HASH, 1, V1, owner="settled-uid", name="settled-agent-rs"))
    data = json.loads(run(fake, "-o", "json", "status").output)
    rows = {r["name"]: (r["stable"], r["canary"]) for r in data}
    assert rows == {"settled-agent": (V1.composite, None), "support-agent": (V1.composite, V2_PROMPT.composite)}
    rs_reads = [sel for plural, sel in fake.selectors if plural == "replicasets"]
    assert rs_reads == [f"rollouts-pod-template-hash in ({CANARY_HASH},{STABLE_HASH})"]

    fake.update("rollouts", "agents", "support-agent", lambda r: (
        r["status"].update(stableRS=CANARY_HASH, currentPodHash=CANARY_HASH, phase="Healthy")))
    fake.selectors.clear()
    data = json.loads(run(fake, "-o", "json", "status").output)
    assert {r["name"]: r["stable"] for r in data}["support-agent"] == V2_PROMPT.composite
    assert [plural for plural, _ in fake.selectors] == ["rollouts"]  # nothing rolling out: one list


def test_status_json_carries_the_tree(fake):
    data = json.loads(run(fake, "-o", "json", "status", "support-agent").output)
    assert [r["revision"] for r in data["revisions"]] == [2, 1]
    assert data["revisions"][1]["runs"][0]["phase"] == "Successful"
    assert [p["ready"] for p in data["revisions"][0]["pods"]] == ["0/1"]


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli.Globals().style().colour
    assert not cli.Globals(no_color=True).style().colour
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli.Globals().style().colour


def _become_healthy(f: FakeCluster) -> None:
    def promote(r):
        r["status"].update(phase="Healthy", message="", stableRS=CANARY_HASH, currentStepIndex=4,
                           pauseConditions=None, controllerPause=False)
    f.update("rollouts", "agents", "support-agent", promote)


def _canary_ready(f: FakeCluster) -> None:
    f.update("pods", "agents", f"support-agent-{CANARY_HASH}-0",
             lambda p: p["status"]["containerStatuses"][0].update(ready=True))


def test_status_watch_redraws_on_pod_and_rollout_changes_and_ends_when_done(fake):
    fake.during_watch += [_canary_ready, _become_healthy]
    result = run(fake, "-o", "json", "status", "support-agent", "-w", "--until-done")
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert frames[0]["phase"] == "Paused" and frames[0]["revisions"][0]["pods"][0]["ready"] == "0/1"
    assert any(f["revisions"][0]["pods"][0]["ready"] == "1/1" and f["phase"] == "Paused" for f in frames)
    assert frames[-1]["phase"] == "Healthy"
    lists = [p for m, p, _ in fake.requests if m == "GET"]
    assert len(lists) == 5  # one read of the Rollout, one list per kind; the rest came by watch


def test_a_table_watch_redraws_when_what_it_shows_changes_and_only_then(fake):
    def annotate_pod(f):  # an event that changes nothing the view shows
        f.update("pods", "agents", f"support-agent-{CANARY_HASH}-0",
                 lambda p: p["metadata"].setdefault("annotations", {}).update(note="seen"))

    fake.during_watch += [annotate_pod, _canary_ready, _become_healthy]
    result = run(fake, "status", "support-agent", "-w", "--until-done")
    assert result.exit_code == 0, result.output
    frames = [line for line in result.stdout.splitlines() if line.split()[:2] == ["NAME", "KIND"]]
    assert len(frames) == 3, result.stdout  # at start, the canary pod Ready, Healthy
    assert "ready:0/1" in result.stdout and "ready:1/1" in result.stdout and "Healthy" in result.stdout


def test_status_watch_until_done_exits_2_when_degraded(fake):
    def abort(f):
        f.update("rollouts", "agents", "support-agent",
                 lambda r: r["status"].update(abort=True, phase="Degraded", message="RolloutAborted: x"))
    fake.during_watch.append(abort)
    assert run(fake, "-o", "json", "status", "support-agent", "-w", "--until-done").exit_code == 2


def test_list_watch_keeps_replicasets_from_its_watch_instead_of_relisting(fake):
    def canary_promoted(f):
        _become_healthy(f)

    fake.during_watch += [canary_promoted, lambda f: _thread.interrupt_main()]
    result = run(fake, "-o", "json", "status", "-w")
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert frames[0][0]["canary"] == V2_PROMPT.composite and frames[-1][0]["canary"] is None
    rs_lists = [p for m, p, _ in fake.requests if m == "GET" and p.endswith("/replicasets")]
    assert len(rs_lists) == 1


def test_a_watch_resumes_after_410_gone_by_listing_again(fake):
    fake.gone = 4  # the first watch of each of the four kinds
    fake.during_watch.append(_become_healthy)
    result = run(fake, "-o", "json", "status", "support-agent", "-w", "--until-done")
    assert result.exit_code == 0 and json.loads(result.stdout.splitlines()[-1])["phase"] == "Healthy"
    lists = [p for m, p, _ in fake.requests if m == "GET"]
    assert len(lists) == 5 + 4  # every kind listed again after its 410


# --- wait ----------------------------------------------------------------------------------------------


def test_wait_for_healthy_exits_0_once_the_controller_finishes(fake):
    fake.put(rollout_obj(phase="Progressing", message="", pauseConditions=None, controllerPause=False,
                         index=2, steps=[{"setWeight": 20}, {"pause": {"duration": "1m"}},
                                         {"setWeight": 50}, {"pause": {"duration": "1m"}}]))
    fake.during_watch.append(_become_healthy)
    result = run(fake, "wait", "support-agent", "--for", "healthy", "--timeout", "30s")
    assert result.exit_code == 0 and "Healthy" in result.output


def test_wait_for_healthy_exits_4_at_a_pause_that_needs_a_person(fake):
    result = run(fake, "wait", "support-agent", "--for", "healthy")
    assert result.exit_code == 4 and "until promoted" in result.output


def test_wait_for_paused_exits_0_at_the_pause(fake):
    assert run(fake, "wait", "support-agent", "--for", "paused").exit_code == 0


def test_wait_exits_2_on_degraded_with_the_measured_values(fake):
    fake.put(run_obj(phase="Failed", values=("0.41",), metric_phase="Failed"))
    fake.update("rollouts", "agents", "support-agent",
                lambda r: r["status"].update(abort=True, phase="Degraded", message="RolloutAborted: failed"))
    result = run(fake, "wait", "support-agent", "--for", "completed")
    assert result.exit_code == 2
    assert "RolloutAborted" in result.output and "task-success-rate Failed measured [0.41]" in result.output


def test_wait_times_out_with_exit_3(fake):
    result = run(fake, "wait", "support-agent", "--for", "completed", "--timeout", "1s")
    assert result.exit_code == 3 and "timed out after 1s" in result.output and "Paused" in result.output


def test_wait_for_a_missing_rollout_is_an_error_not_a_timeout(fake):
    result = run(fake, "wait", "nobody")
    assert result.exit_code == 1 and "'nobody'" in result.output and "not found" in result.output


def test_wait_does_not_trust_status_the_controller_has_not_caught_up_with(fake):
    fake.update("rollouts", "agents", "support-agent",
                lambda r: (r["metadata"].update(generation=4), r["status"].update(phase="Healthy")))
    assert run(fake, "wait", "support-agent", "--for", "healthy", "--timeout", "1s").exit_code == 3


# --- promote/abort: the resourceVersion precondition and group forms ------------------------------------


def test_a_409_makes_promote_read_again_and_decide_again(fake):
    """Between our read and our patch the analysis turns Inconclusive and the controller pauses on
    it: the patch carries the resourceVersion we read, gets 409, and the new decision is a refusal."""
    fake.before_patch.append(lambda f: f.update(
        "rollouts", "agents", "support-agent", lambda r: r["status"].update(INCONCLUSIVE_PAUSE)))
    fake.put(run_obj())
    result = run(fake, "promote", "support-agent")
    assert result.exit_code == 1 and "Inconclusive" in result.output and "--force" in result.output
    assert rollout_of(fake)["status"]["pauseConditions"] == [{"reason": "InconclusiveAnalysisRun"}]
    reads = [p for m, p, _ in fake.requests if m == "GET" and p.endswith("/rollouts/support-agent")]
    assert len(reads) == 2
    assert len(fake.patches()) == 1  # the stale one, refused by the API server


def test_a_concurrent_change_is_not_overwritten_and_the_retry_succeeds(fake):
    fake.before_patch.append(lambda f: f.update(
        "rollouts", "agents", "support-agent", lambda r: r["metadata"].setdefault("labels", {}).update(team="x")))
    result = run(fake, "promote", "support-agent")
    assert result.exit_code == 0, result.output
    after = rollout_of(fake)
    assert after["metadata"]["labels"]["team"] == "x" and "pauseConditions" not in after["status"]
    sent = [body["metadata"]["resourceVersion"] for _, body in fake.patches()]
    assert len(sent) == 2 and sent[0] != sent[1]


def test_the_controller_reacting_between_status_and_spec_patches_does_not_move_two_steps(fake):
    fake.update("rollouts", "agents", "support-agent", lambda r: r["spec"].update(paused=True))
    fake.before_patch += [lambda f: None, lambda f: f.update(  # the controller saw the status patch
        "rollouts", "agents", "support-agent", lambda r: r["status"].update(message="reconciled"))]
    result = run(fake, "promote", "support-agent")
    assert result.exit_code == 0, result.output
    after = rollout_of(fake)
    assert after["spec"]["paused"] is False and after["status"]["currentStepIndex"] == 1
    assert len(fake.patches()) == 2


def test_promote_and_abort_over_a_selector_report_each_rollout(fake):
    other = rollout_obj(current=STABLE_HASH, phase="Healthy", pauseConditions=None, controllerPause=False)
    other["metadata"].update(name="billing-agent", uid="uid-billing")
    for obj in (rollout_of(fake), other):
        obj["metadata"].setdefault("labels", {})["team"] = "support"
        fake.put(obj)
    result = run(fake, "promote", "-l", "team=support")
    assert result.exit_code == 1
    assert "rollout 'support-agent' promoted" in result.output
    assert "'billing-agent'" in result.output and "nothing to promote" in result.output
    assert "1 of 2 Rollouts failed" in result.output
    result = run(fake, "abort", "-l", "team=nobody")
    assert result.exit_code == 1 and "no Rollouts match" in result.output
    assert run(fake, "abort", "support-agent", "-l", "team=support").exit_code == 1


def test_pause_and_restart_send_the_argo_patches(fake):
    assert run(fake, "pause", "support-agent").exit_code == 0
    assert rollout_of(fake)["spec"]["paused"] is True
    again = run(fake, "pause", "support-agent")
    assert again.exit_code == 1 and "already paused" in again.output
    assert run(fake, "restart", "support-agent").exit_code == 0
    assert rollout_of(fake)["spec"]["restartAt"].endswith("Z")
    assert all(body["metadata"]["resourceVersion"] for _, body in fake.patches())


# --- history and undo ------------------------------------------------------------------------------------


V0 = cv.CompositeVersion(prompt="support-v0", model=V1.model, tools=V1.tools, image="registry.example/agent:1.3.0")


@pytest.fixture
def revisions(fake) -> FakeCluster:
    """Rev 0 (passed long ago), rev 1 stable (passed), rev 2 canary (failed)."""
    fake.put(rs_obj("0ld0ld0ld", 0, V0, replicas=0))
    fake.put(run_obj(name="support-agent-0ld0ld0ld-0-0", phase="Successful", values=("0.97",),
                     metric_phase="Successful", hash_="0ld0ld0ld"))
    fake.put(run_obj(phase="Failed", values=("0.41",), metric_phase="Failed"))
    return fake


def test_history_lists_each_revision_with_layers_and_analysis(revisions):
    data = json.loads(run(revisions, "-o", "json", "history", "support-agent").output)
    assert [(r["revision"], r["role"], r["analysis"]) for r in data] == [
        (2, "canary", "Failed"), (1, "stable", "Successful"), (0, "old", "Successful")]
    assert data[0]["version"]["raw"]["prompt"] == "support-v2"
    assert "task-success-rate Failed measured [0.41]" in data[0]["decisive"][0]
    table = run(revisions, "history", "support-agent").output
    assert "support-v0" in table and "Why analyses did not pass" in table and "[0.41]" in table


def test_undo_defaults_to_the_last_passed_revision_and_restores_template_and_layer_annotations(revisions):
    revisions.admit = webhook
    revisions.update("rollouts", "agents", "support-agent",
                     lambda r: r["metadata"]["annotations"].update({cv.CONTAINER: "agent"}))
    result = run(revisions, "undo", "support-agent")
    assert result.exit_code == 0, result.output
    assert f"revision 1, composite version {V1.composite}" in result.output
    after = rollout_of(revisions)
    stable_template = copy.deepcopy(revisions.get("replicasets", "agents", f"support-agent-{STABLE_HASH}")["spec"]["template"])
    del stable_template["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert after["spec"]["template"] == stable_template
    annotations = after["metadata"]["annotations"]
    assert (annotations[cv.PROMPT], annotations[cv.MODEL], annotations[cv.TOOLS]) == (
        V1.prompt, V1.model, V1.tools_list)
    assert annotations[cv.CONTAINER] == "agent"
    assert after["metadata"]["labels"][cv.COMPOSITE_VERSION] == V1.composite  # the webhook agrees
    assert len(revisions.patches()) == 1


def test_undo_to_a_revision_whose_analysis_failed_needs_force(revisions):
    revisions.update("rollouts", "agents", "support-agent",
                     lambda r: r["status"].update(currentPodHash=STABLE_HASH))
    refused = run(revisions, "undo", "support-agent", "--to-revision", "2")
    assert refused.exit_code == 1 and "analysis was Failed" in refused.output and "[0.41]" in refused.output
    assert not revisions.patches()
    assert run(revisions, "undo", "support-agent", "--to-revision", "2", "--force").exit_code == 0
    assert rollout_of(revisions)["metadata"]["annotations"][cv.PROMPT] == "support-v2"


def test_undo_by_composite_version_and_unknown_targets(revisions):
    assert run(revisions, "undo", "support-agent", "--to-version", V0.composite).exit_code == 0
    assert rollout_of(revisions)["spec"]["template"]["spec"]["containers"][0]["image"] == V0.image
    missing = run(revisions, "undo", "support-agent", "--to-revision", "9")
    assert missing.exit_code == 1 and "no revision 9" in missing.output and "have: 2" in missing.output


# --- set ------------------------------------------------------------------------------------------------


def test_set_prompt_names_the_layer_and_the_composite_version_the_webhook_computed(fake):
    fake.admit = webhook
    result = run(fake, "set", "prompt", "support-agent", "support-v3")
    assert result.exit_code == 0, result.output
    expected = cv.CompositeVersion(prompt="support-v3", model=V2_PROMPT.model, tools=V2_PROMPT.tools,
                                   image=V2_PROMPT.image)
    assert "prompt: support-v2 -> support-v3" in result.output
    assert f"composite version: {V2_PROMPT.composite} -> {expected.composite}" in result.output
    assert rollout_of(fake)["metadata"]["annotations"][cv.PROMPT] == "support-v3"


def test_set_with_server_dry_run_changes_nothing(fake):
    fake.admit = webhook
    before = rollout_of(fake)
    result = run(fake, "set", "image", "support-agent", "registry.example/agent:2.0.0", "--dry-run=server")
    assert result.exit_code == 0 and "image: registry.example/agent:1.4.0 -> registry.example/agent:2.0.0" in result.output
    assert "would be updated" in result.output and rollout_of(fake) == before


def test_set_refuses_bad_or_unchanged_values_in_one_line(fake):
    bad = run(fake, "set", "tools", "support-agent", "crm")
    assert bad.exit_code == 1 and "agentroll.dev/tools" in bad.output and len(bad.output.strip().splitlines()) == 1
    same = run(fake, "set", "prompt", "support-agent", "support-v2")
    assert same.exit_code == 1 and "nothing to change" in same.output
    assert not fake.patches()


# --- flags and completion --------------------------------------------------------------------------------


def test_rollout_names_complete_from_the_cluster(fake):
    other = rollout_obj()
    other["metadata"].update(name="summary-agent", uid="uid-2")
    fake.put(other)
    result = CliRunner().invoke(cli.main, [], obj=cli.Globals(api=fake), prog_name="kubectl-agentroll",
                                env={"_KUBECTL_AGENTROLL_COMPLETE": "bash_complete",
                                     "COMP_WORDS": "kubectl-agentroll -n agents undo su", "COMP_CWORD": "4"})
    assert result.output.split() == ["plain,summary-agent", "plain,support-agent"]


def test_a_bad_request_timeout_is_one_line(tmp_path):
    result = CliRunner().invoke(cli.main, ["--request-timeout", "soon", "status"])
    assert result.exit_code == 1 and result.output.strip() == (
        "error: --request-timeout 'soon': expected e.g. 0, 30, 30s, 1m or 1h")


# `kubectl options` of kubectl v1.34 minus what does not concern a plugin (-v, --cache-dir, --kuberc, --profile...)
KUBECTL_CONNECTION_FLAGS = ["--as", "--as-group", "--as-uid", "--certificate-authority", "--client-certificate",
                            "--client-key", "--cluster", "--context", "--insecure-skip-tls-verify", "--kubeconfig",
                            "-n, --namespace", "--password", "--request-timeout", "-s, --server", "--tls-server-name",
                            "--token", "--user", "--username"]


@pytest.mark.parametrize("command", [[], ["status"], ["promote"], ["set", "prompt"]])
def test_help_lists_kubectls_connection_flags(command):
    result = CliRunner().invoke(cli.main, [*command, "--help"])
    assert result.exit_code == 0
    missing = [f for f in KUBECTL_CONNECTION_FLAGS if f not in result.output]
    assert not missing


def test_each_command_name_loads_the_command_of_that_name():
    with click.Context(cli.main) as ctx:
        for name in cli.main.list_commands(ctx):
            command = cli.main.get_command(ctx, name)
            assert isinstance(command, click.Command) and command.name == name


def test_a_command_imports_its_own_module_and_no_other_commands():
    """`status NAME` must not build the twelve other commands: they load when asked for (cli.LazyGroup)."""
    code = ("import json, sys\n"
            "from kubectl_agentroll.cli import main\n"
            "main(['status', '--help'], standalone_mode=False)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kubectl_agentroll.commands'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "kubectl_agentroll.commands", "kubectl_agentroll.commands.common", "kubectl_agentroll.commands.status"]


def test_connection_flags_reach_the_kubeconfig_from_the_command_line(tmp_path):
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nclusters: []\n")
    base = ["--kubeconfig", str(config), "status", "x"]
    missing = CliRunner().invoke(cli.main, [*base, "-s", "https://127.0.0.1:1", "--client-key", "/nope/k.pem"])
    assert missing.exit_code == 1 and missing.output == "error: --client-key /nope/k.pem: no such file\n"
    alone = CliRunner().invoke(cli.main, [*base, "--server", "https://127.0.0.1:1", "--as-uid", "u1"])
    assert alone.exit_code == 1 and alone.output.startswith("error: --as-group/--as-uid: ")
    assert len(alone.output.splitlines()) == 1


def test_impersonation_and_token_flags_reach_the_request_headers(tmp_path):
    from kubectl_agentroll.kubeconfig import Target
    from kubectl_agentroll.rest import Rest

    rest = Rest(Target(server="https://127.0.0.1:1", token="t", impersonate="alice",
                       impersonate_groups=("ops",), insecure=True))
    headers = rest._headers(None)
    assert headers["Authorization"] == "Bearer t" and headers["Impersonate-User"] == "alice"


def test_abort_then_retry_and_version_diff_on_the_fake(fake):
    out = run(fake, "abort", "support-agent")
    assert out.exit_code == 0 and f"stable composite version {V1.composite}" in out.output
    assert rollout_of(fake)["status"]["abort"] is True
    assert [path.endswith("/status") for path, _ in fake.patches()] == [True]
    early = run(fake, "retry", "support-agent")  # the controller has not rolled back yet
    assert early.exit_code == 1 and "still being aborted (phase Paused)" in early.output
    assert rollout_of(fake)["status"]["abort"] is True
    fake.update("rollouts", "agents", "support-agent",  # what the controller does next
                lambda r: r["status"].update(phase="Degraded", message="RolloutAborted: aborted"))
    assert run(fake, "retry", "support-agent").exit_code == 0
    assert rollout_of(fake)["status"]["abort"] is False
    again = run(fake, "retry", "support-agent")
    assert again.exit_code == 1 and "not aborted" in again.output
    diff = json.loads(run(fake, "-o", "json", "version-diff", "support-agent").stdout)
    assert diff["changed"] == ["prompt"] and diff["new"]["raw"]["prompt"] == "support-v2"


def test_large_answers_decode_the_same_through_orjson():
    from kubectl_agentroll import rest

    big = {"items": [{"metadata": {"name": f"agent-{i}", "labels": {"a": "ü"}}, "n": i / 3} for i in range(5000)]}
    payload = json.dumps(big).encode()
    assert len(payload) > rest.BIG and rest._loads(payload) == big
