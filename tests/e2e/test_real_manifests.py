"""Argo Rollouts' own example and e2e manifests, opted in, through `kubectl agentroll inject`, then
validated by the real kube-apiserver (server-side dry run against the Rollout CRD's schema).

These are manifests we did not write: canaries with traffic routing, experiments, background
analysis, blue-green, workloadRef. They come from the Argo Rollouts module the local cluster
builds the controller from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def argo_module_dir() -> Path:
    """The Argo Rollouts source the controller was built from (scripts/local-cluster keeps it)."""
    version = json.loads((REPO / "scripts" / "versions.json").read_text())["argo-rollouts"]
    cache = Path(os.environ.get("AGENTROLL_CACHE") or Path.home() / ".cache" / "agentroll").expanduser()
    candidates = [cache / "src" / f"argo-rollouts-{version}"]
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
    if gomodcache:
        candidates.append(Path(gomodcache) / "github.com" / "argoproj" / f"argo-rollouts@{version}")
    for candidate in candidates:
        if (candidate / "examples").is_dir():
            return candidate
    pytest.fail(f"no Argo Rollouts {version} source found in {', '.join(map(str, candidates))}")


def real_world_rollouts() -> list[dict]:
    root = argo_module_dir()
    rollouts = []
    for path in sorted([*root.glob("examples/**/*.yaml"), *root.glob("test/e2e/**/*.yaml")]):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # a few e2e fixtures are Go templates, not YAML
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Rollout":
                doc.setdefault("metadata", {})
                doc["metadata"].setdefault("annotations", {})["agentroll.dev/inject"] = "true"
                rollouts.append(doc)
    return rollouts


def inject(docs: list[dict]) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "kubectl_agentroll", "inject", "-f", "-"],
        input=yaml.safe_dump_all(docs), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_argo_examples_are_injected_and_accepted_by_the_real_crd_schema(cluster):
    rollouts = real_world_rollouts()
    assert len(rollouts) >= 50, "expected Argo's examples and e2e manifests"
    namespace = f"e2e-real-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        for i, doc in enumerate(rollouts):
            # Some e2e fixtures carry placeholder names (REPLACEME, $$name$$): name them all.
            doc["metadata"].update(namespace=namespace, name=f"real-{i}")
        injected = inject(rollouts)
        assert len(injected) == len(rollouts)
        assert inject(injected) == injected  # admitting our own output changes nothing

        strategies = {"canary": 0, "blueGreen": 0}
        for doc in injected:
            labels = doc["metadata"]["labels"]
            assert labels["agentroll.dev/composite-version"]
            strategy = doc["spec"].get("strategy") or {}
            for key in strategies:
                strategies[key] += key in strategy
            if "template" in doc["spec"]:
                assert doc["spec"]["template"]["metadata"]["labels"]["agentroll.dev/composite-version"]
        assert strategies["canary"] > 0 and strategies["blueGreen"] > 0

        result = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-",
                                 input=yaml.safe_dump_all(injected), check=False, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        accepted = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
        assert len(accepted) == len(injected)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
