"""The Helm chart: lint and render, then install it into the real local control plane.

There is no kubelet, so the webhook runs as a local process (`agentroll-webhook serve
--kubeconfig`) with the chart's own ServiceAccount token (so the chart's RBAC is what it gets), and
the rendered MutatingWebhookConfiguration is pointed at it (`url` + `caBundle` from
`agentroll-webhook certs --ip 127.0.0.1`). Everything else is applied as rendered.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "agentroll"
RELEASE, RELEASE_NS = "agentroll", "agentroll-system"
WEBHOOK = f"{RELEASE}-webhook"
SELECT_LABEL = "agentroll.dev/e2e-agents"


def server_version(cluster) -> str:
    # `helm template` assumes an old Kubernetes unless told; the chart needs >= 1.30.
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    return version["gitVersion"]


def render(cluster, *args: str, check: bool = True):
    result = cluster.helm("template", RELEASE, str(CHART), "--namespace", RELEASE_NS,
                          "--include-crds", "--kube-version", server_version(cluster), *args,
                          check=check)
    if not check:
        return result
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


# -- lint and render -------------------------------------------------------------------------------


def test_helm_lint_default_and_non_default_values(cluster):
    cluster.helm("lint", str(CHART), "--strict")
    cluster.helm("lint", str(CHART), "--strict", "--set", "certManager.enabled=true",
                 "--set", "validatingAdmissionPolicy.enabled=false",
                 "--set", "replicaCount=3", "--set", "webhook.failurePolicy=Ignore")


def test_default_render(cluster):
    docs = render(cluster)
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "Service", "PodDisruptionBudget",
            "MutatingWebhookConfiguration", "ClusterAnalysisTemplate", "AgentRollPolicy",
            "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Secret",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds
    assert "Certificate" not in kinds

    (config,) = by_kind(docs, "MutatingWebhookConfiguration")
    (secret,) = by_kind(docs, "Secret")
    assert [h["name"] for h in config["webhooks"]] == ["annotated.rollouts.agentroll.dev",
                                                     "policy.rollouts.agentroll.dev"]
    for hook in config["webhooks"]:
        assert hook["rules"] == [{"apiGroups": ["argoproj.io"], "apiVersions": ["*"],
                                  "resources": ["rollouts"], "operations": ["CREATE", "UPDATE"],
                                  "scope": "Namespaced"}]
        assert (hook["sideEffects"], hook["failurePolicy"], hook["reinvocationPolicy"]) == (
            "None", "Fail", "IfNeeded")
        assert hook["timeoutSeconds"] <= 10
        (expr,) = hook["namespaceSelector"]["matchExpressions"]
        assert expr["operator"] == "NotIn" and {"kube-system", RELEASE_NS} <= set(expr["values"])
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        assert hook["clientConfig"]["service"]["name"] == WEBHOOK

    (deploy,) = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deploy["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["affinity"]["podAntiAffinity"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https",
                                                      "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    assert "--watch-policies" in container["args"]

    (role,) = by_kind(docs, "ClusterRole")
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert verbs == {("agentroll.dev", "agentrollpolicies"): {"list", "watch"},
                     ("", "namespaces"): {"list", "watch"}}

    (template,) = by_kind(docs, "ClusterAnalysisTemplate")
    args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    for injected in ("rollout", "namespace", "canary-hash", "stable-hash", "composite-version"):
        assert injected in args and args[injected] is None
    assert args["prometheus-address"].startswith("http")
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert set(metrics) == {"hallucination-rate", "task-completion-rate",
                            "tool-call-success-rate", "cost-per-task"}
    for metric in metrics.values():
        query = metric["provider"]["prometheus"]["query"]
        assert "rollouts_pod_template_hash=\"{{args.canary-hash}}\"" in query
        assert query.rstrip().endswith("or on() vector(NaN)")
        assert "isNaN" in metric["successCondition"] and "isNaN" in metric["failureCondition"]


def test_non_default_render(cluster):
    docs = render(cluster, "--set", "certManager.enabled=true",
                  "--set", "validatingAdmissionPolicy.enabled=false",
                  "--set", "defaultPolicy.namespaceSelector.matchLabels.agents=yes",
                  "--set", "defaultPolicy.priority=5",
                  "--set", "webhook.excludeNamespaces={monitoring}",
                  "--set", "analysisTemplates.prometheusAddress=http://prom.example:9090")
    kinds = {d["kind"] for d in docs}
    assert "Secret" not in kinds and "ValidatingAdmissionPolicy" not in kinds
    assert len(by_kind(docs, "Certificate")) == 2 and len(by_kind(docs, "Issuer")) == 2
    (config,) = by_kind(docs, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{RELEASE_NS}/{WEBHOOK}")
    for hook in config["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]
        assert "monitoring" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    (policy,) = by_kind(docs, "AgentRollPolicy")
    assert policy["spec"]["namespaceSelector"] == {"matchLabels": {"agents": "yes"}}
    assert policy["spec"]["priority"] == 5
    (template,) = by_kind(docs, "ClusterAnalysisTemplate")
    args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    assert args["prometheus-address"] == "http://prom.example:9090"


@pytest.mark.parametrize("bad", ["webhook.failurePolicy=Sometimes", "replicaCount=0",
                                 "unknownKey=1", "analysisTemplates.window=five"])
def test_values_schema_rejects_bad_values(cluster, bad):
    result = render(cluster, "--set", bad, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


# -- installed into the local control plane ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _webhook_bin() -> str:
    found = shutil.which("agentroll-webhook") or str(Path(sys.executable).with_name(
        "agentroll-webhook"))
    return found


def _sa_kubeconfig(cluster, path: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = cluster.kubectl("create", "token", WEBHOOK, "-n", RELEASE_NS,
                            "--duration=2h").stdout.strip()
    (entry,) = admin["clusters"]
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "webhook",
        "clusters": [{"name": "local", "cluster": entry["cluster"]}],
        "users": [{"name": "webhook", "user": {"token": token}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "local", "user": "webhook"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def installed(cluster, tmp_path_factory):
    """The rendered chart applied, the webhook serving from a local process, policies from the
    cluster. Yields a dict with the webhook's `log` path."""
    work = tmp_path_factory.mktemp("chart")
    subprocess.run([_webhook_bin(), "certs", "--out-dir", str(work / "certs"),
                    "--ip", "127.0.0.1"], check=True, capture_output=True)
    ca = base64.b64encode((work / "certs" / "ca.crt").read_bytes()).decode()
    port = _free_port()

    docs = render(cluster, "--set", "analysisTemplates.prometheusAddress=http://127.0.0.1:9")
    for doc in docs:
        if doc["kind"] == "MutatingWebhookConfiguration":
            for hook in doc["webhooks"]:
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}/mutate",
                                        "caBundle": ca}
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    cluster.kubectl("create", "namespace", RELEASE_NS, check=False)
    cluster.apply(yaml.safe_dump_all(crds))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/agentrollpolicies.agentroll.dev")
    webhook_config = next(d for d in rest if d["kind"] == "MutatingWebhookConfiguration")
    # The webhook configuration goes last, once the process that answers it is ready.
    cluster.apply(yaml.safe_dump_all([d for d in rest if d is not webhook_config]))

    env = dict(cluster.env)
    log_path = work / "webhook.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [_webhook_bin(), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-cert-file", str(work / "certs" / "tls.crt"),
         "--tls-private-key-file", str(work / "certs" / "tls.key"),
         "--kubeconfig", str(_sa_kubeconfig(cluster, work / "sa.kubeconfig")),
         "--resync-seconds", "60"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    ctx = ssl.create_default_context(cafile=str(work / "certs" / "ca.crt"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))

    def ready():
        assert proc.poll() is None, f"webhook exited: {log_path.read_text()[-2000:]}"
        try:
            return opener.open(f"https://127.0.0.1:{port}/readyz", timeout=2).status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        cluster.wait_for(ready, timeout=60, what="webhook /readyz (policy snapshot loaded)")
        cluster.apply(yaml.safe_dump(webhook_config))
        yield {"log": log_path, "port": port, "opener": opener}
    finally:
        # Remove the fail-closed configuration before the process that answers it goes away.
        cluster.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK, "--ignore-not-found",
                        check=False)
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy",
                        f"{WEBHOOK}-composite-version", "--ignore-not-found", check=False)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
  annotations: {annotations}
spec:
  replicas: 2
  revisionHistoryLimit: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: agent
        image: registry.invalid/agent:{tag}
        env:
        - {{name: MODEL, value: model-a}}
  strategy:
    canary:
      steps:
      - setWeight: 50
"""


def rollout(name: str, tag: str = "v1", annotations: dict | None = None) -> str:
    return ROLLOUT.format(name=name, tag=tag, annotations=json.dumps(annotations or {}))


def policy(name: str, templates: list[str], allowed: list[str]) -> str:
    return yaml.safe_dump({
        "apiVersion": "agentroll.dev/v1alpha1", "kind": "AgentRollPolicy",
        "metadata": {"name": name},
        "spec": {"priority": 10, "namespaceSelector": {"matchLabels": {SELECT_LABEL: "true"}},
                 "analysis": {"templates": [{"name": t} for t in templates]},
                 "allowedTemplates": allowed},
    })


@pytest.fixture
def namespaces(cluster, installed):
    suffix = uuid.uuid4().hex[:6]
    selected, other = f"e2e-agents-{suffix}", f"e2e-plain-{suffix}"
    cluster.kubectl("create", "namespace", selected)
    cluster.kubectl("label", "namespace", selected, f"{SELECT_LABEL}=true")
    cluster.kubectl("create", "namespace", other)
    name = f"e2e-{suffix}"
    cluster.apply(policy(name, ["agent-quality"], ["agent-quality"]))
    yield {"selected": selected, "other": other, "policy": name}
    cluster.kubectl("delete", "agentrollpolicy", name, "--ignore-not-found", check=False)
    cluster.kubectl("delete", "namespace", selected, other, "--wait=false", check=False)


def injected_templates(obj: dict) -> list[str]:
    steps = obj["spec"]["strategy"]["canary"]["steps"]
    return [t["templateName"] for s in steps if "analysis" in s
            for t in s["analysis"]["templates"]]


def dry_run(cluster, manifest: str, namespace: str) -> dict:
    out = cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-o", "json", "-f", "-",
                          input=manifest).stdout
    return json.loads(out)


def test_rollout_in_selected_namespace_gets_the_policy_and_others_are_untouched(cluster,
                                                                              namespaces):
    # The namespace label may reach the webhook's snapshot a moment after `kubectl label`.
    def mutated():
        obj = dry_run(cluster, rollout("agent"), namespaces["selected"])
        return obj if injected_templates(obj) else None

    cluster.wait_for(mutated, timeout=30, what="namespace-selected Rollout mutated")
    cluster.apply(rollout("agent"), namespace=namespaces["selected"])
    stored = cluster.get_json("rollout", "agent", "-n", namespaces["selected"])
    assert injected_templates(stored) == ["agent-quality"]
    assert "agentroll.dev/composite-version" in stored["metadata"]["labels"]
    assert stored["metadata"]["labels"]["agentroll.dev/model-version"] == "model-a"

    cluster.apply(rollout("agent"), namespace=namespaces["other"])
    plain = cluster.get_json("rollout", "agent", "-n", namespaces["other"])
    assert injected_templates(plain) == []
    assert "agentroll.dev/composite-version" not in (plain["metadata"].get("labels") or {})

    # inject: "false" opts out inside a selected namespace (and never reaches the webhook).
    opted_out = dry_run(cluster, rollout("quiet", annotations={"agentroll.dev/inject": "false"}),
                        namespaces["selected"])
    assert injected_templates(opted_out) == []


def test_policy_change_is_picked_up_without_restart(cluster, namespaces):
    cluster.apply(policy(namespaces["policy"], ["agent-quality-v2"],
                         ["agent-quality", "agent-quality-v2"]))

    def switched():
        obj = dry_run(cluster, rollout("agent"), namespaces["selected"])
        return injected_templates(obj) == ["agent-quality-v2"]

    cluster.wait_for(switched, timeout=30, what="the webhook to use the changed policy")


def test_annotation_outside_allowed_templates_is_denied(cluster, namespaces):
    def denied():
        result = cluster.kubectl(
            "apply", "-n", namespaces["selected"], "--dry-run=server", "-f", "-", check=False,
            input=rollout("agent", annotations={"agentroll.dev/analysis": "home-made"}))
        return result if result.returncode != 0 else None

    result = cluster.wait_for(denied, timeout=30, what="annotation outside allowedTemplates denied")
    assert "home-made" in result.stderr and "not allowed by policy" in result.stderr
    assert namespaces["policy"] in result.stderr


def test_invalid_policy_is_reported_and_skipped(cluster, namespaces):
    # Passes the CRD schema (steps are free-form there) but not the webhook's validation; it
    # outranks the valid policy, so using it would show.
    bad = yaml.safe_load(policy(f"{namespaces['policy']}-bad", ["agent-quality-bad"],
                                ["agent-quality-bad"]))
    bad["spec"]["priority"] = 100
    bad["spec"]["defaultSteps"] = [{"setWeight": 150}]
    cluster.apply(yaml.safe_dump(bad))
    try:
        def reported():
            events = cluster.get_json("events", "-n", "default",
                                      "--field-selector", "reason=InvalidPolicy")["items"]
            return [e for e in events if e["involvedObject"]["name"] == bad["metadata"]["name"]]

        (event, *_) = cluster.wait_for(reported, timeout=30, what="an InvalidPolicy event")
        assert "spec.defaultSteps[0].setWeight" in event["message"]
        obj = dry_run(cluster, rollout("agent"), namespaces["selected"])
        assert injected_templates(obj) == ["agent-quality"]
    finally:
        cluster.kubectl("delete", "agentrollpolicy", bad["metadata"]["name"], check=False)


def test_argo_creates_an_analysis_run_from_the_shipped_template(cluster, namespaces):
    ns = namespaces["selected"]
    cluster.apply(rollout("gated"), namespace=ns)
    cluster.wait_for(
        lambda: cluster.get_json("rollout", "gated", "-n", ns).get("status", {}).get("phase")
        == "Healthy", timeout=90, what="first revision Healthy")
    cluster.apply(rollout("gated", tag="v2"), namespace=ns)

    def analysis_run():
        runs = cluster.get_json("analysisruns", "-n", ns)["items"]
        return runs[0] if runs else None

    run = cluster.wait_for(analysis_run, timeout=90, what="an AnalysisRun for the canary")
    assert {m["name"] for m in run["spec"]["metrics"]} == {
        "hallucination-rate", "task-completion-rate", "tool-call-success-rate", "cost-per-task"}
    args = {a["name"]: a.get("value") for a in run["spec"]["args"]}
    assert args["rollout"] == "gated" and args["namespace"] == ns
    assert args["canary-hash"] and args["stable-hash"] and args["canary-hash"] != args[
        "stable-hash"]
    assert args["composite-version"]
    assert args["prometheus-address"] == "http://127.0.0.1:9"

    # Prometheus is unreachable: measurements error and the run never succeeds.
    def measured():
        run = analysis_run()
        results = run.get("status", {}).get("metricResults") or []
        return run if any(r.get("measurements") for r in results) else None

    run = cluster.wait_for(measured, timeout=60, what="a first measurement")
    assert run["status"].get("phase") != "Successful"
    phases = {m["phase"] for r in run["status"]["metricResults"] for m in r["measurements"]}
    assert phases <= {"Error", "Running", "Pending"}, phases


def test_webhook_watch_uses_least_privilege(installed):
    log = installed["log"].read_text()
    assert "policies loaded" in log and "namespaces loaded" in log
    assert "Forbidden" not in log and "forbidden" not in log
