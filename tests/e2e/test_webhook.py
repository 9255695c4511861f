"""The webhook against a real kube-apiserver and a real Argo Rollouts controller.

The webhook runs as a local process with certificates from `agentroll-webhook certs`, registered
through a MutatingWebhookConfiguration with `url: https://127.0.0.1:PORT/mutate`. Analysis uses
the `web` provider against a verdict endpoint this test serves, so an analysis passes or fails on
purpose, and the endpoint records the args the Argo controller resolved.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.e2e

WEBHOOK_CONFIG = "agentroll-e2e"
NAMESPACE_LABEL = "agentroll-e2e"
TEMPLATE = "e2e-agent-quality"
WEBHOOK = [sys.executable, "-m", "webhook"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Verdicts:
    """An HTTP endpoint the Argo controller queries: answers each Rollout's verdict, records args."""

    def __init__(self) -> None:
        self.verdict: dict[str, str] = {}
        self.queries: list[dict[str, str]] = []
        verdicts = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                verdicts.queries.append(query)
                body = json.dumps({"verdict": verdicts.verdict.get(query.get("rollout"), "pass")})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_rollout(self, name: str) -> list[dict[str, str]]:
        return [q for q in self.queries if q.get("rollout") == name]


class Webhook:
    def __init__(self, cluster, tmp: Path) -> None:
        self.cluster, self.tmp = cluster, tmp
        self.port = free_port()
        self.policy = tmp / "policy.yaml"
        self.policy.write_text(f"analysis:\n  templates: [{TEMPLATE}]\n")
        self.log_path = tmp / "webhook.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            [*WEBHOOK, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--tls-cert-file", str(self.tmp / "tls.crt"),
             "--tls-private-key-file", str(self.tmp / "tls.key"),
             "--policy-file", str(self.policy)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        import ssl
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.tmp / "ca.crt"))
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "webhook not ready: " + self.log_path.read_text()
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def webhook_configuration(port: int) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIG},
        "webhooks": [{
            "name": "rollouts.agentroll.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "reinvocationPolicy": "IfNeeded",
            "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate"},
            "rules": [{
                "apiGroups": ["argoproj.io"], "apiVersions": ["*"],
                "resources": ["rollouts"], "operations": ["CREATE", "UPDATE"],
            }],
            "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "webhook"}},
            "matchConditions": [{
                "name": "opted-in",
                "expression": "has(object.metadata.annotations) && "
                              "'agentroll.dev/inject' in object.metadata.annotations",
            }],
        }],
    }


def analysis_template(port: int) -> dict:
    query = "&".join(f"{a}={{{{args.{a}}}}}" for a in
                     ("rollout", "namespace", "canary-hash", "stable-hash", "composite-version"))
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": TEMPLATE},
        "spec": {
            "args": [{"name": a} for a in
                     ("rollout", "namespace", "canary-hash", "stable-hash", "composite-version")],
            "metrics": [{
                "name": "verdict",
                "count": 1,
                "failureLimit": 0,
                "successCondition": 'result == "pass"',
                "provider": {"web": {"url": f"http://127.0.0.1:{port}/verdict?{query}",
                                     "jsonPath": "{$.verdict}"}},
            }],
        },
    }


@pytest.fixture(scope="module")
def verdicts():
    v = Verdicts()
    yield v
    v.server.shutdown()


@pytest.fixture(scope="module")
def webhook(cluster, verdicts, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webhook")
    hook = Webhook(cluster, tmp)
    cluster.apply(json.dumps(analysis_template(verdicts.port)))
    cluster.apply(json.dumps(webhook_configuration(hook.port)))
    # `certs --webhook-config` writes the CA into the configuration through the API.
    result = subprocess.run(
        [*WEBHOOK, "certs", "--out-dir", str(tmp), "--ip", "127.0.0.1",
         "--webhook-config", WEBHOOK_CONFIG, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    stored = cluster.get_json("mutatingwebhookconfiguration", WEBHOOK_CONFIG)
    assert stored["webhooks"][0]["clientConfig"]["caBundle"]
    hook.start()
    yield hook
    hook.stop()
    cluster.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIG, check=False)
    cluster.kubectl("delete", "clusteranalysistemplate", TEMPLATE, check=False)


@pytest.fixture
def namespace(cluster, webhook):
    name = f"e2e-hook-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"{NAMESPACE_LABEL}=webhook")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def agent_rollout(name: str, prompt: str = "v1", annotations: dict | None = None,
                  steps: list | None = None, image: str = "registry.invalid/agent:1.0") -> dict:
    notes = {"agentroll.dev/inject": "true", "agentroll.dev/prompt-version": prompt,
             "agentroll.dev/tools": "crm@1.2.0,search@2.0.1"}
    notes.update(annotations or {})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "annotations": {k: v for k, v in notes.items() if v is not None}},
        "spec": {
            "replicas": 5,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "agent", "image": image,
                    "env": [{"name": "MODEL", "value": "meta-llama/Llama-3.1-70B-Instruct:fp8"}],
                }]},
            },
            "strategy": {"canary": {"steps": steps if steps is not None else [
                {"setWeight": 20}, {"pause": {"duration": "1s"}}, {"setWeight": 60}, {"pause": {}},
            ]}},
        },
    }


def get_rollout(cluster, ns: str, name: str) -> dict:
    return cluster.get_json("rollout", name, "-n", ns)


def replica_sets(cluster, ns: str, name: str) -> dict[str, dict]:
    items = cluster.get_json("replicasets", "-n", ns, "-l", f"app={name}")["items"]
    return {rs["metadata"]["labels"]["rollouts-pod-template-hash"]: rs for rs in items}


def test_opted_in_rollout_and_its_pods_carry_the_composite_version(cluster, namespace):
    result = cluster.apply(json.dumps(agent_rollout("agent")), namespace=namespace)
    assert "configured" in result.stdout or "created" in result.stdout
    stored = get_rollout(cluster, namespace, "agent")
    labels = stored["metadata"]["labels"]
    assert labels["agentroll.dev/prompt-version"] == "v1"
    assert labels["agentroll.dev/model-version"].startswith("meta-llama-Llama-3.1-70B-Instruct-fp8-")
    assert labels["agentroll.dev/image-version"] == "1.0"
    composite = labels["agentroll.dev/composite-version"]
    template = stored["spec"]["template"]["metadata"]
    assert template["annotations"]["agentroll.dev/model-version"] == "meta-llama/Llama-3.1-70B-Instruct:fp8"
    # The injected analysis steps passed the real Rollout CRD schema and were stored.
    steps = stored["spec"]["strategy"]["canary"]["steps"]
    assert [next(iter(s)) for s in steps] == ["setWeight", "pause", "analysis", "setWeight", "pause", "analysis"]
    assert steps[2]["analysis"]["templates"] == [{"templateName": TEMPLATE, "clusterScope": True}]

    cluster.wait_rollout_phase("agent", namespace, what="first revision Healthy")
    cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=agent", "-n", namespace, "--timeout=60s")
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app=agent")["items"]
    assert len(pods) == 5
    assert {p["metadata"]["labels"]["agentroll.dev/composite-version"] for p in pods} == {composite}


def test_rollout_without_the_annotation_is_stored_unchanged(cluster, namespace):
    plain = agent_rollout("plain", annotations={"agentroll.dev/inject": None})
    cluster.apply(json.dumps(plain), namespace=namespace)
    stored = get_rollout(cluster, namespace, "plain")
    assert "labels" not in stored["metadata"]
    assert stored["spec"]["strategy"] == plain["spec"]["strategy"]
    assert stored["spec"]["template"]["metadata"] == plain["spec"]["template"]["metadata"]


def test_prompt_change_alone_starts_a_gated_canary(cluster, namespace, verdicts):
    name = "prompt-agent"
    cluster.apply(json.dumps(agent_rollout(name, prompt="v1")), namespace=namespace)
    cluster.wait_rollout_phase(name, namespace, what="first revision Healthy")
    old = get_rollout(cluster, namespace, name)
    stable_hash = old["status"]["stableRS"]

    result = cluster.apply(json.dumps(agent_rollout(name, prompt="v2")), namespace=namespace)
    assert "Warning" not in result.stderr  # one layer changed: nothing to warn about
    new = get_rollout(cluster, namespace, name)
    assert new["spec"]["template"]["spec"] == old["spec"]["template"]["spec"]  # same image, same env

    def at_second_pause():
        status = get_rollout(cluster, namespace, name).get("status", {})
        return status if status.get("phase") == "Paused" and status.get("currentStepIndex") == 4 else None

    status = cluster.wait_for(at_second_pause, timeout=120, what="canary paused at 60% after a passed analysis")
    canary_hash = status["currentPodHash"]
    assert canary_hash != stable_hash and status["stableRS"] == stable_hash
    sets = replica_sets(cluster, namespace, name)
    assert sets[stable_hash]["metadata"]["labels"]["agentroll.dev/prompt-version"] == "v1"
    assert sets[canary_hash]["metadata"]["labels"]["agentroll.dev/prompt-version"] == "v2"
    assert sets[canary_hash]["spec"]["replicas"] == 3  # 60% of 5

    # The Argo controller resolved every injected arg; fieldRefs read the Rollout being analysed.
    query = verdicts.for_rollout(name)[-1]
    assert query == {
        "rollout": name,
        "namespace": namespace,
        "canary-hash": canary_hash,
        "stable-hash": stable_hash,
        "composite-version": new["metadata"]["labels"]["agentroll.dev/composite-version"],
    }
    runs = cluster.get_json("analysisruns", "-n", namespace)["items"]
    assert [r["status"]["phase"] for r in runs if r["metadata"]["labels"].get("rollouts-pod-template-hash") == canary_hash] == ["Successful"]


def test_failed_agent_analysis_aborts_the_canary(cluster, namespace, verdicts):
    name = "bad-agent"
    cluster.apply(json.dumps(agent_rollout(name, prompt="v1")), namespace=namespace)
    cluster.wait_rollout_phase(name, namespace, what="first revision Healthy")
    stable_hash = get_rollout(cluster, namespace, name)["status"]["stableRS"]
    verdicts.verdict[name] = "fail"
    cluster.apply(json.dumps(agent_rollout(name, prompt="v2-hallucinates")), namespace=namespace)

    def aborted():
        status = get_rollout(cluster, namespace, name).get("status", {})
        return status if status.get("abort") and status.get("phase") == "Degraded" else None

    status = cluster.wait_for(aborted, timeout=120, what="canary aborted after the failed analysis")
    assert status["stableRS"] == stable_hash

    def canary_scaled_down():
        sets = replica_sets(cluster, namespace, name)
        canary = [rs for h, rs in sets.items() if h != stable_hash]
        return canary and all(rs["spec"].get("replicas", 0) == 0 for rs in canary)

    cluster.wait_for(canary_scaled_down, timeout=120, what="the canary ReplicaSet scaled to 0")
    labels = get_rollout(cluster, namespace, name)["metadata"]["labels"]
    assert verdicts.for_rollout(name)[-1]["composite-version"] == labels["agentroll.dev/composite-version"]
    runs = cluster.get_json("analysisruns", "-n", namespace)["items"]
    assert [r["status"]["phase"] for r in runs if r["metadata"]["name"].startswith(name)] == ["Failed"]


def test_update_changing_two_layers_warns_on_apply(cluster, namespace):
    name = "two-layers"
    cluster.apply(json.dumps(agent_rollout(name, prompt="v1")), namespace=namespace)
    changed = agent_rollout(name, prompt="v2", image="registry.invalid/agent:2.0")
    result = cluster.apply(json.dumps(changed), namespace=namespace)
    assert "could not be attributed to one layer" in result.stderr
    assert "prompt v1 -> v2" in result.stderr


def test_denied_annotation_is_a_clear_apply_error(cluster, namespace):
    bad = agent_rollout("bad-tools", annotations={"agentroll.dev/tools": "crm,search@2.0.1"})
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "agentroll.dev/tools: entry 'crm' is not name@version" in result.stderr
    missing = cluster.kubectl("get", "rollout", "bad-tools", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_webhook_down_refuses_opted_in_rollouts_and_nothing_is_half_applied(cluster, namespace, webhook):
    webhook.stop()
    try:
        result = cluster.kubectl("apply", "-n", namespace, "-f", "-",
                                 input=json.dumps(agent_rollout("while-down")), check=False)
        assert result.returncode != 0
        assert "failed calling webhook" in result.stderr
        missing = cluster.kubectl("get", "rollout", "while-down", "-n", namespace, check=False)
        assert "NotFound" in missing.stderr
        # Rollouts that did not opt in are not sent to the webhook, so they still apply.
        plain = agent_rollout("plain-while-down", annotations={"agentroll.dev/inject": None})
        cluster.apply(json.dumps(plain), namespace=namespace)
    finally:
        webhook.start()
    cluster.apply(json.dumps(agent_rollout("while-down")), namespace=namespace)
    assert get_rollout(cluster, namespace, "while-down")["metadata"]["labels"]["agentroll.dev/composite-version"]
