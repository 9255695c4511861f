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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "local-cluster"
VERSIONS = REPO_ROOT / "scripts" / "versions.json"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: needs the local Kubernetes control plane (scripts/local-cluster; builds it with go)")


class KubectlError(AssertionError):
    pass


def _cache_root() -> Path:
    return Path(os.environ.get("AGENTROLL_CACHE") or Path.home() / ".cache" / "agentroll").expanduser()


def _everything_cached() -> bool:
    try:
        versions = {k: v for k, v in json.loads(VERSIONS.read_text()).items() if not k.startswith("_")}
    except (OSError, ValueError):
        return False
    for comp, ver in versions.items():
        base = _cache_root() / "bin" / comp / ver
        if not any((d / ".complete").exists() for d in (base.iterdir() if base.is_dir() else [])):
            return False
    return True


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
        """Poll the Rollout until the controller reports `phase`; return its status."""
        def reached():
            status = self.get_json("rollout", name, "-n", namespace).get("status", {})
            return status if status.get("phase") == phase else None

        return self.wait_for(reached, timeout=timeout, what=what or f"Rollout {name} {phase}")

    def _run(self, binary: Path, args, input, check, timeout) -> subprocess.CompletedProcess:
        cmd = [str(binary), *map(str, args)]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise KubectlError(f"{binary.name} {' '.join(map(str, args))} -> exit {r.returncode}: "
                               f"{r.stderr.strip() or r.stdout.strip()}")
        return r


def _run_script(cmd: str, env: dict) -> tuple:
    """Run scripts/local-cluster <cmd>, echoing progress to the real stderr; return (rc, output)."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if cmd == "up" and not os.environ.get("AGENTROLL_E2E_QUIET"):
            sys.__stderr__.write(line)
            sys.__stderr__.flush()
    return proc.wait(), "".join(lines)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not _in_ci() and shutil.which("go") is None and not _everything_cached():
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
    try:
        yield handle
    finally:
        if not already_running:
            rc, out = _run_script("down", env)
            if rc != 0:
                sys.__stderr__.write(f"local-cluster down failed: {out.strip()}\n")
