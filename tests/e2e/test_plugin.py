"""`kubectl agentroll` status/promote/abort/retry/version-diff against the real control plane.

The Argo Rollouts controller does every transition; the test only runs our commands and polls
the cluster (with a deadline) until the controller has reacted.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
  annotations:
    agentroll.dev/inject: "true"
    agentroll.dev/prompt-version: {prompt}
    agentroll.dev/model-version: claude-sonnet-4
    agentroll.dev/tools: crm@1.2.0,search@2.0.1
    agentroll.dev/analysis: "none"
spec:
  replicas: 5
  revisionHistoryLimit: 5
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: agent
        image: registry.invalid/support-agent:1.4.0
  strategy:
    canary:
      steps:
{steps}
"""

PLAIN_STEPS = """\
      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}"""


def _entry_point() -> str:
    found = shutil.which("kubectl-agentroll") or str(Path(sys.executable).with_name("kubectl-agentroll"))
    assert Path(found).exists(), "kubectl-agentroll is not installed (pip install -e .)"
    return found


class Plugin:
    """Runs our plugin against the cluster, in one namespace."""

    def __init__(self, cluster, namespace: str) -> None:
        self.cluster, self.namespace, self.exe = cluster, namespace, _entry_point()

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = [self.exe, "--kubeconfig", str(self.cluster.kubeconfig), "-n", self.namespace, *args]
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.cluster.env, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl-agentroll {' '.join(args)} -> exit {r.returncode}: {r.stderr}")
        return r

    def status(self, name: str) -> dict:
        return json.loads(self.run("-o", "json", "status", name).stdout)

    def apply(self, name: str, prompt: str, steps: str = PLAIN_STEPS) -> None:
        manifest = ROLLOUT.format(name=name, prompt=prompt, steps=steps)
        injected = self.run("inject", "-f", "-", stdin=manifest).stdout
        self.cluster.apply(injected, namespace=self.namespace)

    def rollout(self, name: str) -> dict:
        return self.cluster.get_json("rollout", name, "-n", self.namespace)

    def wait_status(self, name: str, what: str, predicate, timeout: float = 90) -> dict:
        """Poll the Rollout until predicate(status) holds; the controller does the work. On a
        timeout the error carries the last Rollout seen (spec.paused, generation and status)."""
        seen: dict = {}

        def check():
            ro = seen["rollout"] = self.rollout(name)
            fresh = str((ro.get("status") or {}).get("observedGeneration")) == str(ro["metadata"]["generation"])
            return ro if fresh and predicate(ro.get("status") or {}) else None

        try:
            return self.cluster.wait_for(check, timeout=timeout, what=f"{name}: {what}")
        except AssertionError as err:
            ro = seen.get("rollout") or {}
            last = {"generation": ro.get("metadata", {}).get("generation"),
                    "paused": ro.get("spec", {}).get("paused"), "status": ro.get("status")}
            log = self.cluster.dir / "logs" / "argo-rollouts.log"
            mine = [line for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])
                    if name in line][-15:]
            raise AssertionError(f"{err}; last seen: {json.dumps(last)[:3000]}; the controller's last lines "
                                 "about it:\n" + "\n".join(mine)) from None


class Watcher:
    """`status NAME -w -o json` in the background: one JSON line per redraw."""

    def __init__(self, plugin: Plugin, name: str) -> None:
        cmd = [plugin.exe, "--kubeconfig", str(plugin.cluster.kubeconfig), "-n", plugin.namespace,
               "-o", "json", "status", name, "-w"]
        # Ctrl-C is what stops it: default handling even when this run was started with SIGINT
        # ignored (as `nohup` and a shell's background jobs do), which the child would inherit.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=plugin.cluster.env,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def next_model(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                model = json.loads(self.lines.get(timeout=max(remaining, 0.01)))
            except queue.Empty:
                raise AssertionError(f"status -w printed no matching redraw within {timeout}s") from None
            if predicate(model):
                return model

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, self.proc.stderr.read()


@pytest.fixture
def plugin(cluster):
    namespace = f"e2e-plugin-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    yield Plugin(cluster, namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _paused_at(index: int):
    return lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == index


def _healthy(s: dict) -> bool:
    return s.get("phase") == "Healthy" and s.get("stableRS") == s.get("currentPodHash")


def test_canary_promote_full_abort_retry(plugin):
    name = "support-agent"
    plugin.apply(name, "support-v1")
    v1 = plugin.wait_status(name, "first revision Healthy", _healthy)
    v1_composite = v1["metadata"]["labels"]["agentroll.dev/composite-version"]

    model = plugin.status(name)
    assert model["phase"] == "Healthy" and model["canary"] is None
    assert model["stable"]["composite"] == v1_composite and model["stable"]["layers"]["prompt"] == "support-v1"

    # A new prompt: the controller goes to 20% and pauses at step 1 of 4.
    plugin.apply(name, "support-v2")
    v2 = plugin.wait_status(name, "Paused at step 1", _paused_at(1))
    v2_composite = v2["metadata"]["labels"]["agentroll.dev/composite-version"]
    assert v2_composite != v1_composite
    plugin.cluster.wait_for(lambda: plugin.status(name)["actual_weight"] == 20, timeout=120,
                            what="canary pods available (actual weight 20)")
    model = plugin.status(name)
    assert (model["phase"], model["strategy"], model["step"], model["set_weight"]) == ("Paused", "Canary", "1/4", 20)
    assert model["stable"]["layers"]["prompt"] == "support-v1" and model["stable"]["composite"] == v1_composite
    assert model["canary"]["layers"]["prompt"] == "support-v2" and model["canary"]["composite"] == v2_composite
    assert [row["layer"] for row in model["layers"] if row["changed"]] == ["prompt", "composite"]

    table = plugin.run("status", name).stdout
    assert "Paused" in table and "1/4" in table and "support-v1" in table and "support-v2" in table
    listing = plugin.run("status").stdout
    assert f"{v1_composite} -> {v2_composite}" in listing and name in listing
    diff = json.loads(plugin.run("-o", "json", "version-diff", name).stdout)
    assert diff["changed"] == ["prompt"] and diff["warning"] is None
    assert (diff["old"]["raw"]["prompt"], diff["new"]["raw"]["prompt"]) == ("support-v1", "support-v2")

    # promote: the next pause (step 3, weight 50), seen by a running `status -w`
    watcher = Watcher(plugin, name)
    try:
        assert watcher.next_model(lambda m: m["step"] == "1/4", timeout=30)
        out = plugin.run("promote", name).stdout
        assert f"rollout '{name}' promoted" in out
        plugin.wait_status(name, "Paused at step 3", _paused_at(3))
        seen = watcher.next_model(lambda m: m["step"] == "3/4" and m["phase"] == "Paused", timeout=120)
        assert seen["set_weight"] == 50
    finally:
        code, err = watcher.interrupt()
    assert code == 0 and "Traceback" not in err
    model = plugin.status(name)
    assert (model["step"], model["set_weight"]) == ("3/4", 50)

    # promote --full: done, the canary becomes stable
    assert "fully promoted" in plugin.run("promote", "--full", name).stdout
    plugin.wait_status(name, "fully promoted and Healthy", _healthy)
    model = plugin.status(name)
    assert model["canary"] is None and model["stable"]["composite"] == v2_composite
    assert model["set_weight"] == 100
    nothing = plugin.run("promote", name, check=False)
    assert nothing.returncode == 1 and "nothing to promote" in nothing.stderr

    # another revision, aborted: back to v2, canary scaled down, Degraded
    plugin.apply(name, "support-v3")
    v3 = plugin.wait_status(name, "v3 Paused at step 1", _paused_at(1))
    canary_hash = v3["status"]["currentPodHash"]
    out = plugin.run("abort", name).stdout
    assert f"rollout '{name}' aborted" in out
    assert f"stable composite version {v2_composite}" in out and "not undone" in out
    plugin.wait_status(name, "aborted and Degraded", lambda s: s.get("abort") and s.get("phase") == "Degraded")

    def canary_scaled_down():
        rs = plugin.cluster.get_json("rs", "-n", plugin.namespace, "-l", f"rollouts-pod-template-hash={canary_hash}")
        return rs["items"] and (rs["items"][0]["spec"].get("replicas") or 0) == 0

    plugin.cluster.wait_for(canary_scaled_down, timeout=90, what="canary ReplicaSet scaled to 0")
    model = plugin.status(name)
    assert model["aborted"] and model["phase"] == "Degraded" and model["message"].startswith("RolloutAborted")
    assert "Degraded (aborted)" in plugin.run("status", name).stdout
    refused = plugin.run("promote", name, check=False)
    assert refused.returncode == 1 and "retry" in refused.stderr and "Traceback" not in refused.stderr

    # retry: the canary starts again and pauses at step 1
    assert f"rollout '{name}' retried" in plugin.run("retry", name).stdout
    plugin.wait_status(name, "retried and Paused at step 1", lambda s: not s.get("abort") and _paused_at(1)(s))
    model = plugin.status(name)
    assert not model["aborted"] and model["canary"]["layers"]["prompt"] == "support-v3"
    again = plugin.run("retry", name, check=False)
    assert again.returncode == 1 and "not aborted" in again.stderr


def test_errors_are_one_line_naming_the_rollout(plugin):
    for args in (["status", "missing-agent"], ["promote", "missing-agent"], ["abort", "missing-agent"],
                 ["retry", "missing-agent"], ["version-diff", "missing-agent"]):
        r = plugin.run(*args, check=False)
        assert r.returncode == 1, args
        assert r.stderr.strip().count("\n") == 0 and "missing-agent" in r.stderr and "not found" in r.stderr
        assert "Traceback" not in r.stderr


def test_works_as_a_kubectl_plugin(plugin):
    env = dict(plugin.cluster.env)
    env["PATH"] = os.pathsep.join([str(Path(plugin.exe).parent), env.get("PATH", "")])
    r = subprocess.run([str(plugin.cluster.kubectl_path), "agentroll", "--kubeconfig", str(plugin.cluster.kubeconfig),
                        "-n", plugin.namespace, "status"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "No agent Rollouts found" in r.stdout


class _Scores(http.server.BaseHTTPRequestHandler):
    score = 0.7

    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps({"score": self.score}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def score_server():
    """An agent-quality endpoint the controller's web metric provider queries (it runs on this host)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scores)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/score"
    server.shutdown()


def test_promote_refuses_an_inconclusive_agent_analysis_unless_forced(plugin, score_server):
    name = "graded-agent"
    template = f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: agent-quality-{plugin.namespace}
spec:
  metrics:
  - name: task-success-rate
    count: 1
    successCondition: result >= 0.9
    failureCondition: result < 0.5
    provider:
      web:
        url: {score_server}
        jsonPath: "{{$.score}}"
"""
    plugin.cluster.apply(template, namespace=plugin.namespace)
    steps = f"""\
      - setWeight: 20
      - analysis:
          templates: [{{templateName: agent-quality-{plugin.namespace}}}]
      - setWeight: 50
      - pause: {{}}"""
    plugin.apply(name, "grader-v1", steps)
    plugin.wait_status(name, "first revision Healthy", _healthy)
    plugin.apply(name, "grader-v2", steps)
    plugin.wait_status(name, "paused on the inconclusive analysis",
                       lambda s: s.get("phase") == "Paused" and
                       any(c.get("reason") == "InconclusiveAnalysisRun" for c in s.get("pauseConditions") or []))

    model = plugin.status(name)
    metric = model["analysis_runs"][-1]["metrics"][0]
    assert metric["name"] == "task-success-rate" and metric["phase"] == "Inconclusive"
    assert metric["values"] == ["0.7"] and metric["success_condition"] == "result >= 0.9"

    refused = plugin.run("promote", name, check=False)
    assert refused.returncode == 1 and "Inconclusive" in refused.stderr and "0.7" in refused.stderr
    assert plugin.rollout(name)["status"]["currentStepIndex"] == 1  # nothing was patched

    plugin.run("promote", "--force", name)
    plugin.wait_status(name, "past the analysis, Paused at step 3", _paused_at(3))
