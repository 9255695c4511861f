"""promote/abort/retry: the Argo plugin's patches, the agent-aware refusals, and how they are sent."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kubectl_agentroll import actions as ac
from kubectl_agentroll import cli
from kubectl_agentroll.kube import KubeError
from tests.unit.test_status import CANARY_HASH, STABLE_HASH, V1, in_flight_objects, rollout_obj, run_obj

INCONCLUSIVE = {"currentStepAnalysisRunStatus": {"name": "support-agent-5f4c9d8b7-2-0",
                                                 "status": "Inconclusive",
                                                 "message": "metric assessed Inconclusive"}}


def test_promote_at_a_pause_step_clears_pause_conditions_only():
    patch = ac.plan_promote(rollout_obj())
    assert patch.status == {"status": {"pauseConditions": None}}
    assert patch.spec is None
    assert patch.unified == {"spec": {"paused": False}, "status": {"pauseConditions": None}}


def test_promote_of_a_manually_paused_rollout_also_unpauses_the_spec():
    rollout = rollout_obj()
    rollout["spec"]["paused"] = True
    patch = ac.plan_promote(rollout)
    assert patch.spec == {"spec": {"paused": False}}
    assert patch.status == {"status": {"pauseConditions": None}}


def test_promote_without_pause_conditions_skips_the_current_step():
    rollout = rollout_obj(index=2, phase="Progressing", pauseConditions=None, controllerPause=False)
    patch = ac.plan_promote(rollout)
    assert patch.status == {"status": {"pauseConditions": None, "currentStepIndex": 3}}
    assert patch.unified == {"spec": {"paused": False},
                             "status": {"pauseConditions": None, "currentStepIndex": 3}}


def test_promote_never_moves_past_the_last_step():
    rollout = rollout_obj(index=4, phase="Progressing", pauseConditions=None, controllerPause=False)
    assert ac.argo_promote_patch(rollout).status == {"status": {"pauseConditions": None, "currentStepIndex": 4}}


def test_promote_over_inconclusive_analysis_is_refused_with_the_measured_values():
    rollout = rollout_obj(index=0, canary=INCONCLUSIVE,
                          pauseConditions=[{"reason": "InconclusiveAnalysisRun"}])
    with pytest.raises(ac.Refused) as refused:
        ac.plan_promote(rollout, runs=[run_obj()])
    message = str(refused.value)
    assert "Inconclusive" in message and "--force" in message
    assert "task-success-rate measured [0.71], [0.74] against 'result[0] >= 0.9'" in message


def test_forced_promote_over_inconclusive_analysis_is_argos_inconclusive_patch():
    rollout = rollout_obj(index=0, canary=INCONCLUSIVE, controllerPause=True,
                          pauseConditions=[{"reason": "InconclusiveAnalysisRun"}])
    patch = ac.plan_promote(rollout, force=True)
    assert patch.status == {"status": {"pauseConditions": None, "controllerPause": False,
                                       "currentStepIndex": 1}}
    assert patch.unified == {"spec": {"paused": False}, "status": {"pauseConditions": None}}


def test_promote_over_failed_analysis_is_refused():
    rollout = rollout_obj(canary={"currentStepAnalysisRunStatus": {"name": "r", "status": "Failed"}})
    with pytest.raises(ac.Refused, match="step analysis r is Failed"):
        ac.plan_promote(rollout)


def test_full_promote_sets_promote_full_and_unpauses_only_when_paused():
    patch = ac.plan_promote(rollout_obj(), full=True)
    assert patch.status == {"status": {"promoteFull": True}} and patch.spec is None
    assert patch.unified == {"spec": {"paused": False}, "status": {"promoteFull": True}}
    paused = rollout_obj(current=STABLE_HASH)
    paused["spec"]["paused"] = True
    patch = ac.plan_promote(paused, full=True)
    assert patch.status is None and patch.spec == {"spec": {"paused": False}}


def test_promote_with_nothing_in_flight_and_not_paused_is_refused():
    healthy = rollout_obj(current=STABLE_HASH, index=4, phase="Healthy", pauseConditions=None,
                          controllerPause=False)
    with pytest.raises(ac.Refused, match="not paused"):
        ac.plan_promote(healthy)
    with pytest.raises(ac.Refused, match="not paused"):
        ac.plan_promote(healthy, full=True, force=True)


def test_promote_of_an_aborted_rollout_asks_for_retry():
    with pytest.raises(ac.Refused, match="aborted: `retry`"):
        ac.plan_promote(rollout_obj(abort=True))


def test_abort_names_the_stable_version_and_the_side_effects():
    rollout, replicasets = in_flight_objects()
    patch, lines = ac.plan_abort(rollout, replicasets)
    assert patch.status == {"status": {"abort": True}} and patch.unified == patch.status
    assert patch.spec is None
    assert V1.composite in lines[0] and "prompt support-v1" in lines[0] and "revision 1" in lines[0]
    assert any("not undone" in line for line in lines)


def test_abort_without_update_in_flight_is_refused():
    with pytest.raises(ac.Refused, match="nothing to abort"):
        ac.plan_abort(rollout_obj(current=STABLE_HASH))


def test_retry_only_an_aborted_rollout():
    aborted = rollout_obj(abort=True, phase="Degraded", message="RolloutAborted: Rollout aborted update")
    assert ac.plan_retry(aborted).status == {"status": {"abort": False}}
    with pytest.raises(ac.Refused, match="not aborted"):
        ac.plan_retry(rollout_obj())


def test_retry_waits_for_the_controller_to_act_on_the_abort():
    """Right after `abort`, status.abort is true but the controller has not rolled back yet:
    clearing it then would cancel an abort the controller never saw."""
    with pytest.raises(ac.Refused, match=r"still being aborted \(phase Paused\)"):
        ac.plan_retry(rollout_obj(abort=True))


class Recorder:
    def __init__(self, fail=None):
        self.sent = []
        self.fail = fail or {}

    def __call__(self, body, subresource):
        self.sent.append((subresource, body))
        if subresource in self.fail:
            raise self.fail[subresource]
        return {"sent": body}


def _rv(rv):
    return {"metadata": {"resourceVersion": rv}}


def test_status_patch_goes_first_guarded_by_the_version_read_then_spec():
    rec = Recorder()
    ac.send(ac.Patch(status={"status": 1}, spec={"spec": 2}, unified={"both": 3}), rec, "41")
    assert rec.sent == [("status", {"status": 1, **_rv("41")}), (None, {"spec": 2})]


def test_a_spec_only_patch_is_guarded():
    rec = Recorder()
    ac.send(ac.Patch(spec={"spec": 2}), rec, "41")
    assert rec.sent == [(None, {"spec": 2, **_rv("41")})]


def test_status_subresource_404_falls_back_to_the_unified_patch_on_the_rollout():
    rec = Recorder(fail={"status": KubeError("rollout not found", 404)})
    ac.send(ac.Patch(status={"status": 1}, spec=None, unified={"both": 3}), rec, "41")
    assert rec.sent == [("status", {"status": 1, **_rv("41")}), (None, {"both": 3, **_rv("41")})]


def test_forbidden_status_patch_is_an_error_not_a_fallback():
    rec = Recorder(fail={"status": KubeError("not allowed", 403)})
    with pytest.raises(KubeError, match="not allowed"):
        ac.send(ac.Patch(status={"status": 1}, unified={"both": 3}), rec, "41")
    assert rec.sent == [("status", {"status": 1, **_rv("41")})]


def test_conflicts_are_retried_by_reading_again():
    outcomes = [KubeError("conflict", 409), KubeError("conflict", 409), "done"]
    calls = []

    def attempt():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert ac.with_conflict_retry(attempt) == "done" and len(calls) == 3
    always = KubeError("conflict", 409)

    def never():
        raise always

    with pytest.raises(KubeError, match="conflict"):
        ac.with_conflict_retry(never, tries=2)


def _kubeconfig(tmp_path, server="https://127.0.0.1:1", namespace="agents"):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""
apiVersion: v1
kind: Config
current-context: local
clusters: [{{name: local, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
users: [{{name: me, user: {{token: abc}}}}]
contexts: [{{name: local, context: {{cluster: local, user: me, namespace: {namespace}}}}}]
""")
    return str(path)


@pytest.mark.parametrize("args", [["promote", "support-agent"], ["abort", "support-agent"],
                                  ["retry", "support-agent"], ["status", "support-agent"], ["status"],
                                  ["version-diff", "support-agent"]])
def test_unreachable_api_server_is_one_line_and_exit_1(tmp_path, args):
    result = CliRunner().invoke(cli.main, ["--kubeconfig", _kubeconfig(tmp_path), *args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot reach the API server" in lines[0]
    assert "Traceback" not in result.output


def test_unexpected_exceptions_become_one_line(monkeypatch, capsys):
    def boom(**_):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cli, "main", boom)
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: something broke\n"


def test_kubeconfig_namespace_and_merge(tmp_path):
    from kubectl_agentroll.kubeconfig import Flags, load_target

    first = _kubeconfig(tmp_path)
    other = tmp_path / "other"
    other.write_text("current-context: elsewhere\ncontexts: [{name: local, context: {cluster: x, namespace: ignored}}]\n")
    target = load_target(Flags(kubeconfig=f"{first}:{other}"))
    assert target.namespace == "agents" and target.token == "abc" and target.insecure
    with pytest.raises(KubeError, match="--context nope"):
        load_target(Flags(kubeconfig=first, context="nope"))


def test_canary_hash_constant_matches_fixture():
    # guards the fixtures above: the canary hash is what the in-flight rollout points at
    rollout, replicasets = in_flight_objects()
    assert rollout["status"]["currentPodHash"] == CANARY_HASH
    assert {rs["metadata"]["labels"]["rollouts-pod-template-hash"] for rs in replicasets} == {STABLE_HASH, CANARY_HASH}
