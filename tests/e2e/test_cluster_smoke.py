"""Smoke test: the local control plane schedules pods onto kwok nodes and the
Argo Rollouts controller reconciles a canary Rollout to its first pause."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: smoke
spec:
  replicas: 5
  revisionHistoryLimit: 2
  selector:
    matchLabels: {{app: smoke}}
  template:
    metadata:
      labels: {{app: smoke}}
    spec:
      containers:
      - name: agent
        image: registry.invalid/agent:{tag}
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {{}}
"""


@pytest.fixture
def namespace(cluster):
    name = f"e2e-smoke-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _rollout(cluster, ns):
    return cluster.get_json("rollout", "smoke", "-n", ns)


def test_rollout_reconciled_and_pods_ready(cluster, namespace):
    nodes = cluster.get_json("nodes", "-l", "type=kwok")["items"]
    assert nodes, "no kwok nodes registered"

    cluster.apply(ROLLOUT.format(tag="v1"), namespace=namespace)
    # Initial revision: no canary steps, goes straight to Healthy.
    cluster.wait_rollout_phase("smoke", namespace,
                               what="Rollout phase Healthy (is the Argo Rollouts controller running?)")
    cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=smoke", "-n", namespace, "--timeout=60s")
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app=smoke")["items"]
    assert len(pods) == 5
    kwok_nodes = {n["metadata"]["name"] for n in nodes}
    assert all(p["spec"].get("nodeName") in kwok_nodes for p in pods)

    # New revision: canary to 20% then pause indefinitely at step 1.
    cluster.apply(ROLLOUT.format(tag="v2"), namespace=namespace)

    def paused():
        st = _rollout(cluster, namespace).get("status", {})
        return st if st.get("phase") == "Paused" and st.get("currentStepIndex") == 1 else None

    st = cluster.wait_for(paused, timeout=90, what="Rollout Paused at step 1")
    assert st.get("updatedReplicas") == 1  # 20% of 5
    assert any(c.get("reason") == "CanaryPauseStep" for c in st.get("pauseConditions", []))


def test_pods_stay_ready_through_two_node_heartbeat_deadlines(cluster):
    """`local-cluster soak`: a Deployment held through two node-monitor grace periods, with the
    node's Lease renewed and every pod Ready at every sample (the self-check the demo relies on)."""
    env = {**os.environ, "AGENTROLL_CLUSTER_DIR": str(cluster.dir)}
    script = Path(__file__).resolve().parents[2] / "scripts" / "local-cluster"
    done = subprocess.run([sys.executable, str(script), "soak"], env=env, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "the node and every pod stayed Ready" in done.stdout


def test_a_controller_that_stops_hearing_changes_is_dumped_and_restarted(cluster):
    """The heartbeat's watchdog: a controller that sees no Rollout change within the deadline (here:
    stopped with SIGSTOP, alive to every liveness check) gets a goroutine dump and a restart, and
    hears again afterwards."""
    import json
    import signal

    from localcluster import heartbeat, procs  # on sys.path: conftest puts scripts/ there
    from localcluster.config import Paths

    env = {**os.environ, "AGENTROLL_CLUSTER_DIR": str(cluster.dir)}
    script = Path(__file__).resolve().parents[2] / "scripts" / "local-cluster"
    pidfile = cluster.dir / "run" / "argo-rollouts.json"
    before = json.loads(pidfile.read_text())

    def restart(_beat):
        subprocess.run([sys.executable, str(script), "restart", "argo-rollouts", "--dump"], env=env,
                       check=True, capture_output=True, timeout=120)

    heart = heartbeat.Heartbeat(Paths(cluster.dir), cluster.kubectl_path)
    watchdog = heartbeat.Watchdog(heart, restart, every=0.5, deadline=5)
    with cluster.watchdog.paused():  # the session's watchdog must not restart it a second time
        os.kill(before["pid"], signal.SIGSTOP)
        try:
            watchdog.start()
            cluster.wait_for(lambda: watchdog.deaf, timeout=60, what="the watchdog to find the controller deaf")
            cluster.wait_for(lambda: json.loads(pidfile.read_text())["pid"] != before["pid"], timeout=60,
                             what="a new controller process")
        finally:
            watchdog.stop()
            if procs.pid_alive(before):
                os.kill(before["pid"], signal.SIGCONT)
        heart.ensure()
        assert heart.beat(deadline=30).seconds is not None
    dump = (cluster.dir / "logs" / "argo-rollouts.log.1").read_text()
    assert "goroutine " in dump and "SIGQUIT" in dump
    assert "deaf: not observed within 5 s" in (cluster.dir / "logs" / "heartbeat.log").read_text()
