"""The Helm chart: lint and render, then install it into the real local control plane.

There is no kubelet, so the webhook runs as a local process (`agentroll-webhook serve
--kubeconfig`) with the chart's own ServiceAccount token (so the chart's RBAC is what it gets), and
the rendered MutatingWebhookConfiguration is pointed at it (`url` + `caBundle` from
`agentroll-webhook certs --ip 127.0.0.1`). Everything else is applied as rendered.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
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
from localcluster import webhookrender

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
    secrets = {d["metadata"]["name"]: d for d in by_kind(docs, "Secret")}
    assert set(secrets) == {f"{WEBHOOK}-tls", f"{WEBHOOK}-ca"}
    secret = secrets[f"{WEBHOOK}-tls"]
    assert [h["name"] for h in config["webhooks"]] == ["annotated.rollouts.agentroll.dev",
                                                     "labelled.rollouts.agentroll.dev",
                                                     "policy.rollouts.agentroll.dev",
                                                     "toolservers.agentroll.dev"]
    rollouts_rule = {"apiGroups": ["argoproj.io"], "apiVersions": ["*"], "resources": ["rollouts"],
                     "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}
    for hook in config["webhooks"]:
        tool_servers = hook["name"].startswith("toolservers")
        assert hook["rules"] == [rollouts_rule] + ([{**rollouts_rule, "apiGroups": ["apps"],
                                                      "resources": ["deployments"]}] if tool_servers else [])
        assert (hook["sideEffects"], hook["reinvocationPolicy"]) == ("None", "IfNeeded")
        assert hook["timeoutSeconds"] <= 10
        (expr,) = hook["namespaceSelector"]["matchExpressions"]
        assert expr["operator"] == "NotIn" and {"kube-system", RELEASE_NS} <= set(expr["values"])
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        assert hook["clientConfig"]["service"]["name"] == WEBHOOK
    # Annotated and labelled Rollouts fail closed in the webhook; the others fail open there and
    # the policy-selected ones closed in the ValidatingAdmissionPolicy.
    assert [h["failurePolicy"] for h in config["webhooks"]] == ["Fail", "Fail", "Ignore", "Fail"]
    (tool_condition,) = config["webhooks"][3]["matchConditions"]
    assert "'agentroll.dev/tool-server' in object.metadata.annotations" in tool_condition["expression"]
    assert {p["metadata"]["name"] for p in by_kind(docs, "ValidatingAdmissionPolicy")} == {
        f"{WEBHOOK}-composite-version", f"{WEBHOOK}-policy-selected"}

    (deploy,) = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container, judge = pod["containers"]
    assert judge["args"][:2] == ["judge", "--port=8090"] and judge["readinessProbe"]["httpGet"]["port"] == "judge"
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
    assert "--request-timeout=5" in container["args"] and "--metrics-port=9090" in container["args"]
    (netpol,) = by_kind(docs, "NetworkPolicy")
    admission, metrics_rule, judge_rule = netpol["spec"]["ingress"]
    assert judge_rule["ports"] == [{"port": 8090, "protocol": "TCP"}] and judge_rule["from"]
    assert admission["ports"] == [{"port": 8443, "protocol": "TCP"}] and "from" not in admission
    assert metrics_rule["ports"] == [{"port": 9090, "protocol": "TCP"}] and metrics_rule["from"]
    assert netpol["spec"]["podSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]

    (role,) = by_kind(docs, "ClusterRole")
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert verbs == {("agentroll.dev", "agentrollpolicies"): {"list", "watch"},
                     ("", "namespaces"): {"list", "watch"}, ("argoproj.io", "rollouts"): {"list", "watch"},
                     ("apps", "deployments"): {"list", "watch"}}

    templates = {t["metadata"]["name"]: t for t in by_kind(docs, "ClusterAnalysisTemplate")}
    assert set(templates) == {"agent-quality", "agent-quality-watch", "agent-quality-promql", "agent-dependencies"}
    (gate,) = templates["agent-dependencies"]["spec"]["metrics"]
    assert (gate["count"], gate["interval"], gate["failureLimit"], gate["consecutiveSuccessLimit"]) == (
        360, "10s", -1, 1)
    assert gate["provider"]["web"]["url"] == (
        "{{args.judge-address}}/v1/dependencies?namespace={{args.namespace}}&rollout={{args.rollout}}")
    (default_policy,) = by_kind(docs, "AgentRollPolicy")
    assert default_policy["spec"]["network"]["dependencyTemplate"] == {"name": "agent-dependencies"}
    for name, count in (("agent-quality", 1), ("agent-quality-watch", None)):
        (metric,) = templates[name]["spec"]["metrics"]
        assert metric.get("count") == count and metric["failureLimit"] == 0
        assert metric["failureCondition"] == 'result.decision == "fail"'
        url = metric["provider"]["web"]["url"]
        assert url.startswith("{{args.judge-address}}/v1/verdict?") and "plan={{args.plan}}" in url
        assert f"step-end={'true' if count else 'false'}" in url
        args = {a["name"]: a.get("value") for a in templates[name]["spec"]["args"]}
        assert args["judge-address"] == f"http://{WEBHOOK}.{RELEASE_NS}.svc:8090" and args["plan"] is None
    assert templates["agent-quality-watch"]["spec"]["metrics"][0]["interval"] == "{{args.look-interval}}"
    template = templates["agent-quality-promql"]
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
        assert hook["failurePolicy"] == "Fail"  # no VAP backstop: both fail closed
        assert "monitoring" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    (policy,) = by_kind(docs, "AgentRollPolicy")
    assert policy["spec"]["namespaceSelector"] == {"matchLabels": {"agents": "yes"}}
    assert policy["spec"]["priority"] == 5
    for template in by_kind(docs, "ClusterAnalysisTemplate"):
        args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
        if template["metadata"]["name"] != "agent-dependencies":  # asks the judge, not Prometheus
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
    """`helm install` of the chart, the webhook serving from a local process (the post-renderer
    points the webhook configuration at it), policies from the cluster."""
    work = tmp_path_factory.mktemp("chart")
    subprocess.run([_webhook_bin(), "certs", "--out-dir", str(work / "certs"),
                    "--ip", "127.0.0.1"], check=True, capture_output=True)
    port = _free_port()
    helm_args = [RELEASE, str(CHART), "--namespace", RELEASE_NS,
                 "--set", "analysisTemplates.prometheusAddress=http://127.0.0.1:9",
                 *webhookrender.helm_args(f"https://127.0.0.1:{port}/mutate",
                                          (work / "certs" / "ca.crt").read_bytes())]
    cluster.helm("install", *helm_args, "--create-namespace")

    log_path = work / "webhook.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [_webhook_bin(), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-cert-file", str(work / "certs" / "tls.crt"),
         "--tls-private-key-file", str(work / "certs" / "tls.key"),
         "--kubeconfig", str(_sa_kubeconfig(cluster, work / "sa.kubeconfig")),
         "--resync-seconds", "5"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(cluster.env))
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
        yield {"log": log_path, "helm_args": helm_args}
    finally:
        # Remove the fail-closed configuration before the process that answers it goes away.
        cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NS, check=False)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_helm_upgrade_keeps_the_self_managed_certificate(cluster, installed):
    secret = f"{WEBHOOK}-tls"
    before = cluster.get_json("secret", secret, "-n", RELEASE_NS)["data"]
    cluster.helm("upgrade", *installed["helm_args"], "--set", "defaultPolicy.priority=1")
    after = cluster.get_json("secret", secret, "-n", RELEASE_NS)["data"]
    assert after == before
    assert cluster.get_json("agentrollpolicy", "default")["spec"]["priority"] == 1
    x509 = pytest.importorskip("cryptography.x509")
    cert = x509.load_pem_x509_certificate(base64.b64decode(after["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{WEBHOOK}.{RELEASE_NS}.svc" in names.get_values_for_type(x509.DNSName)


def _secret_state(cluster) -> tuple[bytes, bytes, dict]:
    tls = cluster.get_json("secret", f"{WEBHOOK}-tls", "-n", RELEASE_NS)["data"]
    ca = cluster.get_json("secret", f"{WEBHOOK}-ca", "-n", RELEASE_NS)
    return base64.b64decode(tls["ca.crt"]), base64.b64decode(tls["tls.crt"]), ca


def _verifies(cert_pem: bytes, bundle_pem: bytes) -> bool:
    x509 = pytest.importorskip("cryptography.x509")
    cert = x509.load_pem_x509_certificate(cert_pem)
    for ca in x509.load_pem_x509_certificates(bundle_pem):
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except Exception:  # noqa: BLE001 - InvalidSignature, or another issuer
            continue
    return False


def test_helm_upgrades_rotate_the_ca_through_an_overlap(cluster, installed):
    """certs.days above what the CA has left (3650 + 30 days) makes the next upgrade add the next
    CA to caBundle, still serving the old pair; the one after signs with it. Each serving
    certificate verifies against the caBundle of the render before it and of its own."""
    bundle0, cert0, _ = _secret_state(cluster)
    cluster.helm("upgrade", *installed["helm_args"], "--set", "certs.days=3650")
    bundle1, cert1, ca1 = _secret_state(cluster)
    assert cert1 == cert0 and bundle1.count(b"BEGIN CERTIFICATE") == 2
    assert "next.crt" in ca1["data"] and bundle1.startswith(bundle0)
    cluster.helm("upgrade", *installed["helm_args"], "--set", "certs.days=3650")
    bundle2, cert2, ca2 = _secret_state(cluster)
    assert cert2 != cert1 and "previous.crt" in ca2["data"]
    assert _verifies(cert2, bundle1) and _verifies(cert2, bundle2)
    assert _verifies(cert1, bundle2), "the previous CA stays trusted"
    assert not _verifies(cert2, bundle0), "the new pair is signed by the next CA"
    config = render(cluster, "--set", "certs.days=365")  # without lookup: a fresh CA, one cert
    (secret,) = [d for d in by_kind(config, "Secret") if d["metadata"]["name"].endswith("-tls")]
    assert base64.b64decode(secret["data"]["ca.crt"]).count(b"BEGIN CERTIFICATE") == 1


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


def policy(name: str, templates: list[str], allowed: list[str], args: dict | None = None,
           selector: dict | None = None, background: list[str] = (), look_interval: str | None = None) -> str:
    analysis: dict = {"templates": [{"name": t} for t in templates],
                      "backgroundTemplates": [{"name": t} for t in background]}
    if look_interval:
        analysis["lookInterval"] = look_interval
    if args:
        analysis["args"] = [{"name": k, "value": v} for k, v in args.items()]
    return yaml.safe_dump({
        "apiVersion": "agentroll.dev/v1alpha1", "kind": "AgentRollPolicy",
        "metadata": {"name": name},
        "spec": {"priority": 10,
                 "namespaceSelector": selector or {"matchLabels": {SELECT_LABEL: "true"}},
                 "analysis": analysis, "allowedTemplates": allowed},
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
    both = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                  "values": [namespaces["selected"], namespaces["other"]]}]}
    bad = yaml.safe_load(policy(f"{namespaces['policy']}-bad", ["agent-quality-bad"],
                                ["agent-quality-bad"], selector=both))
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
        # Where only the invalid policy selects, the VAP backstop refuses: fail closed.
        refused = cluster.kubectl("apply", "-n", namespaces["other"], "--dry-run=server", "-f",
                                  "-", input=rollout("agent"), check=False)
        assert refused.returncode != 0 and bad["metadata"]["name"] in refused.stderr
    finally:
        cluster.kubectl("delete", "agentrollpolicy", bad["metadata"]["name"], check=False)


def test_argo_creates_an_analysis_run_from_the_shipped_template(cluster, namespaces):
    ns = namespaces["selected"]
    cluster.apply(policy(namespaces["policy"], ["agent-quality-promql"], ["agent-quality-promql"]))
    cluster.wait_for(lambda: injected_templates(dry_run(cluster, rollout("gated"), ns)) == ["agent-quality-promql"],
                     timeout=30, what="the PromQL template in the injected steps")
    cluster.apply(rollout("gated"), namespace=ns)
    cluster.wait_rollout_phase("gated", ns, what="first revision Healthy")
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

    run = cluster.wait_for(measured, timeout=120, what="a first measurement")
    assert run["status"].get("phase") != "Successful"
    phases = {m["phase"] for r in run["status"]["metricResults"] for m in r["measurements"]}
    assert phases <= {"Error", "Running", "Pending"}, phases


def test_webhook_watch_resyncs_with_least_privilege(cluster, installed):
    # --resync-seconds 5: the watch is ended and everything relisted; admission keeps working.
    def relisted():
        log = installed["log"].read_text()
        return log.count("policies loaded") >= 3 and log.count("namespaces loaded") >= 3

    cluster.wait_for(relisted, timeout=40, what="two resyncs of the policy snapshot")
    log = installed["log"].read_text()
    assert "Forbidden" not in log and "forbidden" not in log and "watch failed" not in log


def test_namespace_label_change_is_picked_up(cluster, namespaces):
    ns = namespaces["other"]
    assert injected_templates(dry_run(cluster, rollout("agent"), ns)) == []
    cluster.kubectl("label", "namespace", ns, f"{SELECT_LABEL}=true")

    def selected():
        return injected_templates(dry_run(cluster, rollout("agent"), ns)) == ["agent-quality"]

    cluster.wait_for(selected, timeout=30, what="the relabelled namespace to be selected")


def test_validating_admission_policy_type_checks_against_the_rollout_schema(cluster, installed):
    # kube-controller-manager type-checks the expressions against the Rollout CRD's schema and
    # writes status.typeChecking ({} when there is nothing to warn about).
    for name in (f"{WEBHOOK}-composite-version", f"{WEBHOOK}-policy-selected"):
        def checked(name=name):
            vap = cluster.get_json("validatingadmissionpolicy", name)
            status = vap.get("status") or {}
            return status if "typeChecking" in status else None

        status = cluster.wait_for(checked, timeout=60, what=f"{name} type checking")
        assert not status["typeChecking"].get("expressionWarnings"), status


@contextlib.contextmanager
def webhook_unreachable(cluster):
    """Every webhook of the chart pointed at a port nothing listens on, and back afterwards."""
    config = cluster.get_json("mutatingwebhookconfiguration", WEBHOOK)
    urls = [h["clientConfig"]["url"] for h in config["webhooks"]]
    down = f"https://127.0.0.1:{_free_port()}/mutate"

    def point_to(targets):
        patch = [{"op": "replace", "path": f"/webhooks/{i}/clientConfig/url", "value": url}
                 for i, url in enumerate(targets)]
        cluster.kubectl("patch", "mutatingwebhookconfiguration", WEBHOOK, "--type=json",
                        "-p", json.dumps(patch))

    point_to([down] * len(urls))
    try:
        yield
    finally:
        point_to(urls)


def test_webhook_outage_fails_closed_for_agent_rollouts_only(cluster, namespaces):
    """With no webhook answering: non-agent Rollouts are admitted, agent Rollouts are refused -
    annotated ones by the webhook's failurePolicy, namespace-selected ones by the VAP."""
    def attempt(namespace, annotations=None):
        return cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-",
                               check=False, input=rollout("outage", annotations=annotations))

    with webhook_unreachable(cluster):
        # Configuration changes reach the apiserver's admission chain asynchronously.
        refused = cluster.wait_for(
            lambda: (r := attempt(namespaces["selected"])).returncode != 0 and r,
            timeout=30, what="the namespace-selected Rollout refused while the webhook is down")
        assert "policy-selected" in refused.stderr or "did not mutate" in refused.stderr
        assert "agentroll.dev/composite-version" in refused.stderr
        annotated = attempt(namespaces["other"], {"agentroll.dev/inject": "true"})
        assert annotated.returncode != 0 and "annotated.rollouts.agentroll.dev" in annotated.stderr
        plain = attempt(namespaces["other"])
        assert plain.returncode == 0, plain.stderr
        opted_out = attempt(namespaces["selected"], {"agentroll.dev/inject": "false"})
        assert opted_out.returncode == 0, opted_out.stderr
    cluster.wait_for(lambda: attempt(namespaces["selected"]).returncode == 0, timeout=30,
                     what="admission back to normal")


def test_label_integrity_no_unchecked_composite_version_reaches_storage(cluster, namespaces):
    """A composite-version label that a person wrote is recomputed on an agent Rollout, removed
    from one that is not opted in, and with no webhook answering, refused."""
    forged = {"agentroll.dev/composite-version": "forged0001"}

    def with_labels(name, annotations=None):
        doc = yaml.safe_load(rollout(name, annotations=annotations))
        doc["metadata"]["labels"] = dict(forged)
        doc["spec"]["template"]["metadata"]["labels"].update(forged)
        return yaml.safe_dump(doc)

    real = dry_run(cluster, rollout("honest"), namespaces["selected"])
    stored = dry_run(cluster, with_labels("honest"), namespaces["selected"])
    version = real["metadata"]["labels"]["agentroll.dev/composite-version"]
    assert stored["metadata"]["labels"]["agentroll.dev/composite-version"] == version != "forged0001"
    assert stored["spec"]["template"]["metadata"]["labels"]["agentroll.dev/composite-version"] == version

    for namespace, opt in ((namespaces["other"], None),
                           (namespaces["selected"], {"agentroll.dev/inject": "false"})):
        out = dry_run(cluster, with_labels("opted-out", opt), namespace)
        assert "agentroll.dev/composite-version" not in out["metadata"].get("labels", {})
        assert "agentroll.dev/composite-version" not in out["spec"]["template"]["metadata"]["labels"]

    def attempt(namespace, manifest):
        return cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-",
                               check=False, input=manifest)

    with webhook_unreachable(cluster):
        refused = cluster.wait_for(
            lambda: (r := attempt(namespaces["other"], with_labels("forged"))).returncode != 0 and r,
            timeout=30, what="a hand-labelled Rollout refused while the webhook is down")
        assert "labelled.rollouts.agentroll.dev" in refused.stderr
        refused = attempt(namespaces["selected"], with_labels("forged"))
        assert refused.returncode != 0 and "labelled.rollouts.agentroll.dev" in refused.stderr
        plain = attempt(namespaces["other"], rollout("plain"))
        assert plain.returncode == 0, plain.stderr
    cluster.wait_for(lambda: attempt(namespaces["selected"], rollout("back")).returncode == 0,
                     timeout=30, what="admission back to normal")


GATED_ROLLOUT = ROLLOUT.replace("  annotations: {annotations}\n", "").replace(
    "      - setWeight: 50\n", "      - setWeight: 50\n      - pause: {{duration: {pause}}}\n")
# Time compressed for the test: 30 s of canary traffic at 6,000 tasks/min (~1,500 canary tasks at
# 50%) instead of minutes at a real agent's rate; the window matches the pause.
GATE_ARGS = {"window": "30s"}
PAUSE = "30s"
TASKS_PER_MINUTE = 6000
Z_CRITICAL = 2.326


def _resolved_queries(run: dict) -> dict:
    args = {a["name"]: a.get("value", "") for a in run["spec"]["args"]}
    out = {}
    for metric in run["spec"]["metrics"]:
        text = metric["provider"]["prometheus"]["query"]
        for key, value in args.items():
            text = text.replace("{{args." + key + "}}", value)
        out[metric["name"]] = text
    return out


def _stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("canary_quality, traffic, run_phase, rollout_phase", [
    ({}, True, "Successful", "Healthy"),                       # healthy canary: promoted
    ({"hallucination": 0.15}, True, "Failed", "Degraded"),      # 5% -> 15%: aborted
    ({}, False, "Inconclusive", "Paused"),                     # no series at all: a human decides
], ids=["healthy", "hallucination-15pct", "no-series"])
def test_gate_on_real_prometheus_drives_the_rollout(cluster, namespaces, agent_traffic, canary_quality,
                                                   traffic, run_phase, rollout_phase):
    """The shipped template against the local Prometheus, fed by the traffic generator."""
    ns = namespaces["selected"]
    cluster.apply(policy(namespaces["policy"], ["agent-quality-promql"], ["agent-quality-promql"],
                         args={"prometheus-address": cluster.prometheus_url, **GATE_ARGS}))

    def uses_local_prometheus():
        steps = dry_run(cluster, GATED_ROLLOUT.format(name="gated", tag="v1", pause=PAUSE), ns)[
            "spec"]["strategy"]["canary"]["steps"]
        args = [a for s in steps if "analysis" in s for a in s["analysis"]["args"]]
        return {"name": "prometheus-address", "value": cluster.prometheus_url} in args

    cluster.wait_for(uses_local_prometheus, timeout=30, what="the policy's args in the injected steps")
    cluster.apply(GATED_ROLLOUT.format(name="gated", tag="v1", pause=PAUSE), namespace=ns)
    cluster.wait_rollout_phase("gated", ns, what="first revision Healthy")
    generator = None
    if traffic:
        scenario = {"default": {"hallucination": 0.05, "completion": 0.90, "tool_success": 0.97,
                                "cost": 0.02, "cost_cv": 1.0},
                    "versions": [{"match": {"image-version": "v2"}, **canary_quality}]}
        generator = agent_traffic([f"{ns}/gated"], scenario, tasks_per_minute=TASKS_PER_MINUTE)
    cluster.apply(GATED_ROLLOUT.format(name="gated", tag="v2", pause=PAUSE), namespace=ns)

    def finished():
        runs = cluster.get_json("analysisruns", "-n", ns)["items"]
        return runs[0] if runs and runs[0].get("status", {}).get("phase") in (
            "Successful", "Failed", "Inconclusive", "Error") else None

    run = cluster.wait_for(finished, timeout=150, what="the AnalysisRun to finish")
    results = {r["name"]: r for r in run["status"]["metricResults"]}
    assert run["status"]["phase"] == run_phase, results
    cluster.wait_rollout_phase("gated", ns, rollout_phase, timeout=120)
    values = {name: float(r["measurements"][-1]["value"].strip("[]")) for name, r in results.items()}
    if not traffic:
        assert all(v != v for v in values.values()), values  # NaN: Inconclusive, never a pass
        return
    if run_phase == "Failed":
        assert values["hallucination-rate"] > Z_CRITICAL
        assert results["hallucination-rate"]["phase"] == "Failed"
    else:
        assert all(v <= Z_CRITICAL for v in values.values()), values

    # What Argo measured is what Prometheus's engine computes from the scraped counters at the
    # moment of the measurement (increase() extrapolates, so the value moves a little with time).
    queries = _resolved_queries(run)
    for name, result in results.items():
        m = result["measurements"][-1]
        start, end = _stamp(m["startedAt"]) - 1, _stamp(m["finishedAt"]) + 1
        seen = [float(s["value"][1]) for t in [start + i * 0.05 for i in range(int((end - start) / 0.05) + 1)]
                for s in cluster.prometheus_query(queries[name], at=t)]
        assert min(abs(v - values[name]) for v in seen) < 0.05, (name, values[name], min(seen), max(seen))

    # Scraped counts agree with what the generator produced (up to one scrape of lag).
    scraped = {s["metric"]["rollouts_pod_template_hash"]: float(s["value"][1]) for s in cluster.prometheus_query(
        f'sum by (rollouts_pod_template_hash) (agentroll_tasks_total{{namespace="{ns}"}})')}
    state = generator.state()[f"{ns}/gated"]  # read after the query: produced >= scraped
    for version, produced in state["versions"].items():
        assert produced["tasks"] * 0.9 - 200 <= scraped[version] <= produced["tasks"], (version, produced)


JUDGED_ROLLOUT = GATED_ROLLOUT.replace("""      - setWeight: 50
      - pause: {{duration: {pause}}}""", """      - setWeight: 20
      - pause: {{duration: {pause}}}
      - setWeight: 50
      - pause: {{duration: {pause}}}""")


@pytest.mark.parametrize("canary_quality, rollout_phase", [
    ({}, "Healthy"),                          # promoted through both steps
    ({"hallucination": 0.10}, "Degraded"),    # 5% -> 10%: aborted during the first step
], ids=["healthy", "hallucination-10pct"])
def test_judge_gates_the_rollout_through_argo(cluster, namespaces, agent_traffic, judge, canary_quality,
                                              rollout_phase):
    """The shipped judge templates, injected by the webhook (step-end looks and background looks
    every 5 s), called by the real Argo controller, reading the local Prometheus."""
    ns = namespaces["selected"]
    cluster.apply(policy(namespaces["policy"], ["agent-quality"], ["agent-quality", "agent-quality-watch"],
                         args={"judge-address": judge, "prometheus-address": cluster.prometheus_url},
                         background=["agent-quality-watch"], look_interval="5s"))

    def injected():
        out = dry_run(cluster, JUDGED_ROLLOUT.format(name="judged", tag="v1", pause=PAUSE), ns)
        canary = out["spec"]["strategy"]["canary"]
        return canary.get("analysis", {}).get("startingStep") == 1 and injected_templates(out) == [
            "agent-quality", "agent-quality"] and out

    out = cluster.wait_for(injected, timeout=30, what="the judge's analysis injected")
    plan = {a["name"]: a.get("value") for a in out["spec"]["strategy"]["canary"]["analysis"]["args"]}["plan"]
    assert plan == f"20:{PAUSE},50:{PAUSE}"
    cluster.apply(JUDGED_ROLLOUT.format(name="judged", tag="v1", pause=PAUSE), namespace=ns)
    v1 = cluster.wait_rollout_phase("judged", ns, what="first revision Healthy")["stableRS"]
    scenario = {"default": {"hallucination": 0.05, "completion": 0.90, "tool_success": 0.97},
                "versions": [{"match": {"image-version": "v2"}, **canary_quality}]}
    agent_traffic([f"{ns}/judged"], scenario, tasks_per_minute=12000)
    cluster.apply(JUDGED_ROLLOUT.format(name="judged", tag="v2", pause=PAUSE), namespace=ns)

    runs: dict = {}  # every AnalysisRun seen while it ran (Argo removes step runs once promoted)

    def finished():
        # The Rollout first: an AnalysisRun's end comes before the Rollout's, so runs read after a
        # finished Rollout show how they ended (read before, one could still say Running).
        st = cluster.get_json("rollout", "judged", "-n", ns).get("status", {})
        runs.update({r["metadata"]["name"]: r for r in cluster.get_json("analysisruns", "-n", ns)["items"]})
        promoted = st.get("phase") == "Healthy" and st.get("stableRS") != v1
        return st if promoted or st.get("phase") == "Degraded" else None

    st = cluster.wait_for(finished, timeout=240, interval=1, what="the judged rollout to finish")
    assert st["phase"] == rollout_phase, st.get("message")
    answers = {name: json.loads(m["value"]) for name, r in runs.items()
               for res in r.get("status", {}).get("metricResults", []) for m in res.get("measurements", [])
               if m.get("value")}
    assert answers, runs
    status = subprocess.run([sys.executable, "-m", "kubectl_agentroll", "status", "judged", "-n", ns],
                            capture_output=True, text=True, env=cluster.env, timeout=60)
    if rollout_phase == "Degraded":
        (background,) = [r for r in runs.values() if r["metadata"]["labels"].get("rollout-type") == "Background"]
        assert background["status"]["phase"] == "Failed"
        last = json.loads(background["status"]["metricResults"][0]["measurements"][-1]["value"])
        assert last["decision"] == "fail"
        h = last["metrics"]["hallucination-rate"]
        assert h["status"] == "fail" and h["canary"]["value"] > h["stable"]["value"]
        assert h["statistic"] >= h["boundary"]
        # Stopped during the first step (20%): no look of the 50% step was ever taken.
        assert all(r["metadata"]["labels"].get("step-index") in (None, "2") for r in runs.values())
        assert last["at_s"] <= 35, last["at_s"]
        assert "the judge stopped the canary" in status.stdout and "hallucination-rate" in status.stdout
    else:
        steps = [r for r in runs.values() if r["metadata"]["labels"].get("rollout-type") == "Step"]
        assert len(steps) == 2 and all(r["status"]["phase"] == "Successful" for r in steps)
        assert all(json.loads(r["status"]["metricResults"][0]["measurements"][-1]["value"])["decision"] == "pass"
                   for r in steps)


# -- the gate's PromQL, evaluated by Prometheus's own engine ---------------------------------------

PROMETHEUS_MODULE = "github.com/prometheus/prometheus@v0.305.0"  # Prometheus 3.5

PROMQL_CHECK = r"""
package promcheck

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/promqltest"
)

type testCase struct {
	Name  string `json:"name"`
	Load  string `json:"load"`
	Query string `json:"query"`
}

func TestQueries(t *testing.T) {
	raw, err := os.ReadFile(os.Getenv("CASES"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 1000000)
	out := map[string][]string{}
	for _, c := range cases {
		st := promqltest.LoadedStorage(t, c.Load)
		q, err := engine.NewInstantQuery(context.Background(), st, nil, c.Query,
			timestamp.Time(10*60*1000))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatalf("%s: %v", c.Name, res.Err)
		}
		vec, err := res.Vector()
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		values := []string{}
		for _, s := range vec {
			if math.IsNaN(s.F) {
				values = append(values, "NaN")
			} else {
				values = append(values, strconv.FormatFloat(s.F, 'g', -1, 64))
			}
		}
		out[c.Name] = values
		q.Close()
		st.Close()
	}
	b, _ := json.Marshal(out)
	if err := os.WriteFile(os.Getenv("RESULTS"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
"""


def _gate_cases(template: dict) -> tuple[list[dict], dict]:
    """Counters for canary (hash c) and stable (hash s) growing so that increase over 5m is the
    stated count; the template's queries with the args resolved; the simulation's expectation."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gate_simulation import Gate, cost_z, rate_z

    gate = Gate.from_chart()
    args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    args.update({"namespace": "ns", "canary-hash": "c", "stable-hash": "s", "rollout": "r",
                 "composite-version": "v"})
    queries = {}
    for metric in template["spec"]["metrics"]:
        text = metric["provider"]["prometheus"]["query"]
        for key, value in args.items():
            text = text.replace("{{args." + key + "}}", value)
        assert "{{" not in text
        queries[metric["name"]] = text

    def series(name, labels, per_window):
        body = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return f"  {name}{{{body}}} 0+{per_window / 5}x10"

    cases, expected = [], {}
    rates = {
        "hallucination-rate": ("agentroll_evaluations_total", "verdict", "hallucinated",
                               "grounded", gate.hallucination_margin, gate.min_evaluations),
        "task-completion-rate": ("agentroll_tasks_total", "outcome", "failure", "success",
                                 gate.task_failure_margin, gate.min_tasks),
        "tool-call-success-rate": ("agentroll_tool_calls_total", "status", "error", "ok",
                                   gate.tool_error_margin, gate.min_tool_calls),
    }
    # (bad canary, all canary, bad stable, all stable); None: that series is absent
    samples = {"healthy": (3, 50, 48, 950), "worse": (60, 250, 38, 750),
               "no-bad-events": (None, 150, 48, 950), "thin": (1, 20, 48, 950),
               "no-canary-data": (None, None, 48, 950)}
    for metric, (name, key, bad, good, margin, minimum) in rates.items():
        for label, (xc, nc, xs, ns) in samples.items():
            if metric == "tool-call-success-rate" and nc is not None:
                xc, nc, xs, ns = (v * 3 if v is not None else None for v in (xc, nc, xs, ns))
            lines = ["load 1m"]
            for hash_, x, n in (("c", xc, nc), ("s", xs, ns)):
                if n is None:
                    continue
                base = {"namespace": "ns", "rollouts_pod_template_hash": hash_}
                if x is not None:
                    lines.append(series(name, {**base, key: bad}, x))
                lines.append(series(name, {**base, key: good}, n - (x or 0)))
            case = f"{metric}/{label}"
            cases.append({"name": case, "load": "\n".join(lines), "query": queries[metric]})
            expected[case] = (float("nan") if nc is None
                              else rate_z(xc or 0, nc, xs, ns, margin, minimum))
    for label, (cc, nc, cs, ns) in {"healthy": (1.0, 50, 19.0, 950),
                                    "worse": (7.5, 250, 15.0, 750),
                                    "thin": (0.5, 20, 19.0, 950),
                                    "no-canary-cost": (None, 50, 19.0, 950)}.items():
        lines = ["load 1m"]
        for hash_, c, n in (("c", cc, nc), ("s", cs, ns)):
            base = {"namespace": "ns", "rollouts_pod_template_hash": hash_}
            lines.append(series("agentroll_tasks_total", {**base, "outcome": "success"}, n))
            if c is not None:
                lines.append(series("agentroll_cost_usd_total", base, c))
        case = f"cost-per-task/{label}"
        cases.append({"name": case, "load": "\n".join(lines), "query": queries["cost-per-task"]})
        expected[case] = (float("nan") if cc is None
                          else cost_z(cc, nc, cs, ns, gate.cost_margin, gate.cost_cv,
                                      gate.min_tasks))
    return cases, expected


def test_gate_queries_compute_the_simulated_statistic(cluster, tmp_path):
    """Prometheus's engine on the rendered queries gives exactly the z the simulation uses, one
    sample always, and NaN (Argo: Inconclusive) for thin or missing data."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is needed to build Prometheus's query engine")
    (template,) = [t for t in by_kind(render(cluster), "ClusterAnalysisTemplate")
                   if t["metadata"]["name"] == "agent-quality-promql"]
    cases, expected = _gate_cases(template)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "check_test.go").write_text(PROMQL_CHECK)
    env = {**os.environ, "CASES": str(tmp_path / "cases.json"),
           "RESULTS": str(tmp_path / "results.json"), "GOFLAGS": "-mod=mod",
           "GOTOOLCHAIN": "local"}
    for cmd in (["mod", "init", "promcheck"], ["get", PROMETHEUS_MODULE.replace(
            "@", "/promql/promqltest@")], ["test", "-count=1", "./..."]):
        done = subprocess.run([go, *cmd], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"go {' '.join(cmd)}: {done.stderr[-2000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    for case, want in expected.items():
        (got,) = results[case]  # always exactly one sample: never an empty result
        if want != want:  # NaN
            assert got == "NaN", case
        else:
            assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-9), case
