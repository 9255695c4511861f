"""Fixtures for end-to-end tests against a real local control plane.

The control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok fake nodes, Argo Rollouts controller) is managed by
``scripts/local-cluster``; see that script for what runs and where.

Environment:
  CI=true                  never skip; a failed build/start fails the session
  AGENTROLL_CLUSTER_DIR    cluster state dir to use (default: a fresh temp dir)
  AGENTROLL_CACHE          binary cache (default ~/.cache/agentroll)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "local-cluster"
sys.path[:0] = [str(REPO_ROOT / "scripts")]

from localcluster import gobuild, heartbeat, prometheus  # noqa: E402
from localcluster.cluster import prometheus_url as running_prometheus  # noqa: E402
from localcluster.config import Paths, free_port  # noqa: E402

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: needs the local Kubernetes control plane (scripts/local-cluster; builds it with go)")


class KubectlError(AssertionError):
    pass


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@dataclass
class Cluster:
    """Handle on the running local cluster (all paths absolute)."""

    dir: Path
    kubeconfig: Path
    kubectl_path: Path
    helm_path: Path
    env: dict = field(repr=False)
    watchdog: heartbeat.Watchdog | None = field(default=None, repr=False)  # the session's heartbeat

    def kubectl(self, *args, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the cluster's kubectl; text in/out. check=True raises KubectlError with stderr."""
        return self._run(self.kubectl_path, args, input, check, timeout)

    def helm(self, *args, input: str | None = None, check: bool = True,
             timeout: float = 300) -> subprocess.CompletedProcess:
        return self._run(self.helm_path, args, input, check, timeout)

    def apply(self, manifest: str, namespace: str | None = None) -> subprocess.CompletedProcess:
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=manifest)

    def get_json(self, *args) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_for(self, predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
        """Poll predicate() until it returns a truthy value; return it or fail with `what`."""
        deadline = time.monotonic() + timeout
        last_exc = None
        while time.monotonic() < deadline:
            try:
                result = predicate()
                if result:
                    return result
            except KubectlError as e:  # object not there yet, etc.
                last_exc = e
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                             + (f" (last error: {last_exc})" if last_exc else ""))

    def wait_rollout_phase(self, name: str, namespace: str, phase: str = "Healthy",
                           timeout: float = 90, what: str | None = None) -> dict:
        """Poll the Rollout until the controller reports `phase`; return its status. On a timeout the
        error carries the last status seen (phase, message, conditions)."""
        seen: dict = {}

        def reached():
            status = self.get_json("rollout", name, "-n", namespace).get("status", {})
            seen["status"] = status
            return status if status.get("phase") == phase else None

        try:
            return self.wait_for(reached, timeout=timeout, what=what or f"Rollout {name} {phase}")
        except AssertionError as err:
            last = seen.get("status", {})
            detail = {k: last.get(k) for k in ("phase", "message", "currentStepIndex", "conditions")}
            raise AssertionError(f"{err}; last status: {json.dumps(detail)[:1500]}") from None

    @property
    def prometheus_url(self) -> str:
        return running_prometheus(Paths(self.dir))

    def prometheus_query(self, query: str, at: float | None = None) -> list:
        """An instant query through Prometheus's HTTP API; the result vector."""
        params = {"query": query} | ({"time": f"{at:.3f}"} if at is not None else {})
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with _NO_PROXY.open(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scrape(self, name: str, address: str) -> None:
        prometheus.add_target(Paths(self.dir), name, address)

    def unscrape(self, name: str) -> None:
        prometheus.remove_target(Paths(self.dir), name)

    def _run(self, binary: Path, args, input, check, timeout) -> subprocess.CompletedProcess:
        cmd = [str(binary), *map(str, args)]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise KubectlError(f"{binary.name} {' '.join(map(str, args))} -> exit {r.returncode}: "
                               f"{r.stderr.strip() or r.stdout.strip()}")
        return r


def _run_script(cmd: str, env: dict, *args: str) -> tuple:
    """Run scripts/local-cluster <cmd>, echoing progress to the real stderr; return (rc, output)."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), cmd, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if cmd == "up" and not os.environ.get("AGENTROLL_E2E_QUIET"):
            sys.__stderr__.write(line)
            sys.__stderr__.flush()
    return proc.wait(), "".join(lines)


_SESSION_NOTES: list[str] = []  # printed after the results (output during a test is captured)


def pytest_terminal_summary(terminalreporter):
    for note in _SESSION_NOTES:
        terminalreporter.write_line(note)


def _controller_watchdog(cluster: Cluster, env: dict) -> heartbeat.Watchdog:
    """The Argo controller's heartbeat for the whole session: a controller that stops hearing changes
    is restarted (after a goroutine dump to its log) instead of failing whichever test waits on it."""

    def restart(beat: heartbeat.Beat) -> None:
        sys.__stderr__.write(f"\nlocal cluster: the Argo controller did not observe a Rollout change within "
                             f"{watchdog.deadline:.0f} s; dumping its goroutines and restarting it\n")
        rc, out = _run_script("restart", env, "argo-rollouts", "--dump")
        if rc != 0:
            sys.__stderr__.write(f"local-cluster restart failed: {out.strip()}\n")

    watchdog = heartbeat.Watchdog(heartbeat.Heartbeat(Paths(cluster.dir), cluster.kubectl_path), restart)
    watchdog.start()
    return watchdog


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not _in_ci() and shutil.which("go") is None and not gobuild.everything_cached():
        pytest.skip("e2e: `go` not found and no cached control-plane binaries (set CI=true to fail instead)")
    env = dict(os.environ)
    if not env.get("AGENTROLL_CLUSTER_DIR"):
        env["AGENTROLL_CLUSTER_DIR"] = str(tmp_path_factory.mktemp("agentroll-cluster"))
    cdir = Path(env["AGENTROLL_CLUSTER_DIR"]).resolve()
    # A cluster the developer already runs in that dir is reused and left running.
    already_running = subprocess.run([sys.executable, str(SCRIPT), "status"], env=env,
                                     capture_output=True).returncode == 0
    rc, out = _run_script("up", env)
    if rc != 0:
        tail = "\n".join(out.strip().splitlines()[-5:])
        _run_script("down", env)
        pytest.fail(f"scripts/local-cluster up failed (exit {rc}):\n{tail}", pytrace=False)
    kenv = {k: v for k, v in os.environ.items()
            if k not in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
    kenv["KUBECONFIG"] = str(cdir / "kubeconfig")
    kenv["NO_PROXY"] = kenv["no_proxy"] = "127.0.0.1,localhost"
    handle = Cluster(dir=cdir, kubeconfig=cdir / "kubeconfig", kubectl_path=(cdir / "bin" / "kubectl").resolve(),
                     helm_path=(cdir / "bin" / "helm").resolve(), env=kenv)
    watchdog = handle.watchdog = _controller_watchdog(handle, env)
    try:
        yield handle
    finally:
        watchdog.stop()
        _SESSION_NOTES.append(f"{watchdog.summary()} (log: {cdir / 'logs' / 'heartbeat.log'})")
        if not already_running:
            rc, out = _run_script("down", env)
            if rc != 0:
                sys.__stderr__.write(f"local-cluster down failed: {out.strip()}\n")


class AgentTraffic:
    """scripts/agent-traffic as a subprocess, scraped by the cluster's Prometheus."""

    def __init__(self, cluster: Cluster, name: str, rollouts: list[str], scenario: dict,
                 tasks_per_minute: float, seed: int, workdir: Path):
        import yaml

        self.cluster, self.name = cluster, name
        (workdir / "scenario.yaml").write_text(yaml.safe_dump(scenario))
        port_file = workdir / "port"
        self.log = (workdir / "traffic.log").open("w")
        cmd = [sys.executable, str(REPO_ROOT / "scripts" / "agent-traffic"), "--scenario",
               str(workdir / "scenario.yaml"), "--tasks-per-minute", str(tasks_per_minute),
               "--seed", str(seed), "--port-file", str(port_file)]
        for r in rollouts:
            cmd += ["--rollout", r]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=cluster.env)
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert self.proc.poll() is None, f"agent-traffic exited: {(workdir / 'traffic.log').read_text()}"
            assert time.monotonic() < deadline, "agent-traffic did not start within 30s"
            time.sleep(0.1)
        self.address = f"127.0.0.1:{port_file.read_text().strip()}"
        cluster.scrape(name, self.address)

    def state(self) -> dict:
        with _NO_PROXY.open(f"http://{self.address}/state", timeout=5) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.cluster.unscrape(self.name)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def agent_traffic(cluster, tmp_path):
    """Start traffic: agent_traffic(rollouts=[...], scenario={...}, tasks_per_minute=..., seed=...)."""
    started = []

    def start(rollouts: list[str], scenario: dict | None = None, tasks_per_minute: float = 3000,
              seed: int = 1) -> AgentTraffic:
        workdir = tmp_path / f"traffic-{len(started)}"
        workdir.mkdir()
        t = AgentTraffic(cluster, f"{tmp_path.name.lower()[-40:]}-{len(started)}".strip("-_."), rollouts,
                         scenario or {}, tasks_per_minute, seed, workdir)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


@pytest.fixture
def judge(cluster, tmp_path, request):
    """`agentroll-webhook judge` as a local process reading the cluster's Prometheus (or the
    address an indirect parametrization gives) and caching agent Rollouts for /v1/dependencies;
    its base URL."""
    port = free_port()
    prometheus_url = getattr(request, "param", None) or cluster.prometheus_url
    log = (tmp_path / "judge.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "webhook", "judge", "--host", "127.0.0.1", "--port", str(port),
                             "--prometheus", prometheus_url, "--query-timeout", "5",
                             "--kubeconfig", str(cluster.kubeconfig)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=cluster.env)
    base = f"http://127.0.0.1:{port}"

    def healthy():
        assert proc.poll() is None, f"the judge exited: {(tmp_path / 'judge.log').read_text()[-2000:]}"
        try:
            return _NO_PROXY.open(f"{base}/healthz", timeout=2).status == 200
        except OSError:
            return False

    cluster.wait_for(healthy, timeout=30, what="the judge /healthz")
    yield base
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
