"""What runs, in start order: one spec per process, each with its ports, command line and
readiness check. `cluster.up` walks this table; nothing else knows the order or the flags."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import health, kwok, prometheus
from .config import Paths, child_env
from .health import Check, count_true, http_ok, insecure_ssl_context, kubectl_check, kubectl_run

SERVICE_CIDR = "10.96.0.0/16"


@dataclass
class Context:
    """One `up`: the state directory, the built binaries and the ports chosen for this run."""

    paths: Paths
    bins: dict[str, Path]
    ports: dict[str, int]
    nodes: int = int(os.environ.get("AGENTROLL_KWOK_NODES", "1"))

    @property
    def kubectl(self) -> Path:
        return self.bins["kubernetes"] / "kubectl"

    def url(self, port: str, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[port]}{path}"


@dataclass(frozen=True)
class Component:
    name: str
    build: str                                  # the gobuild component holding its binary
    ports: tuple[str, ...]
    argv: Callable[[Context], list]
    ready: Callable[[Context], Check]
    ready_what: str
    timeout: float = 60
    wait_before_next: bool = False              # later components need this one ready
    prepare: Callable[[Context], None] | None = None  # runs just before this one starts
    env: Callable[[Context], dict] | None = None


def _empty_dir(path: Path) -> None:
    """Every `up` starts from an empty cluster."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.chmod(path, 0o700)


def _etcd(c: Context) -> list:
    data = c.paths.data / "etcd"
    client, peer = c.ports["etcd"], c.ports["etcd-peer"]
    return [c.bins["etcd"] / "etcd", "--name=local", f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{client}", f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=local=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true", "--quota-backend-bytes=2147483648", "--log-level=warn"]


def _apiserver(c: Context) -> list:
    pki = c.paths.pki
    return [
        c.bins["kubernetes"] / "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{c.ports['etcd']}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={c.ports['apiserver']}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}", "--anonymous-auth=false",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
        f"--requestheader-client-ca-file={pki / 'ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        # the `kubernetes` Service cannot point at 127.0.0.1 (loopback is rejected in Endpoints) and
        # nothing runs in real pods here, so do not reconcile it.
        "--endpoint-reconciler-type=none",
        f"--cert-dir={c.paths.data / 'apiserver-certs'}", "--profiling=false", "--v=0",
    ]


def _kcm(c: Context) -> list:
    conf = c.paths.conf / "kube-controller-manager.kubeconfig"
    pki = c.paths.pki
    return [
        c.bins["kubernetes"] / "kube-controller-manager", f"--kubeconfig={conf}",
        f"--authentication-kubeconfig={conf}", f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1", f"--secure-port={c.ports['kcm']}", "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--controllers=*,-node-ipam-controller,-service-lb-controller,-node-route-controller,"
        "-cloud-node-lifecycle-controller",
        f"--node-monitor-grace-period={kwok.NODE_MONITOR_GRACE}",
        "--profiling=false",
    ]


def _scheduler(c: Context) -> list:
    conf = c.paths.conf / "kube-scheduler.kubeconfig"
    return [c.bins["kubernetes"] / "kube-scheduler", f"--kubeconfig={conf}",
            f"--authentication-kubeconfig={conf}", f"--authorization-kubeconfig={conf}",
            "--bind-address=127.0.0.1", f"--secure-port={c.ports['scheduler']}", "--leader-elect=false",
            "--profiling=false"]


def _kwok_config(c: Context) -> None:
    (c.paths.conf / "kwok.yaml").write_text(kwok.config(c.bins["kwok"] / "stages"))


def _kwok(c: Context) -> list:
    cfg = c.paths.conf / "kwok.yaml"
    return [c.bins["kwok"] / "kwok", f"--kubeconfig={c.paths.conf / 'kwok.kubeconfig'}", f"--config={cfg}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={kwok.KWOK_ANNOTATION}=fake",
            f"--node-lease-duration-seconds={kwok.LEASE_SECONDS}",
            f"--server-address=127.0.0.1:{c.ports['kwok']}", "--node-ip=127.0.0.1", "--cidr=10.244.0.1/16"]


def _bootstrap(c: Context) -> None:
    """Fake nodes, the controller's namespace and the Argo Rollouts CRDs, in one server-side apply
    (the Rollout CRD is too big for the client-side last-applied annotation)."""
    bootstrap = c.paths.conf / "bootstrap.yaml"
    bootstrap.write_text(kwok.nodes_yaml(c.nodes)
                         + "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: argo-rollouts\n")
    args = ["apply", "--server-side", "--force-conflicts", "-f", str(bootstrap)]
    for f in _crds(c):
        args += ["-f", str(f)]
    kubectl_run(c.paths, c.kubectl, args)
    # `kubectl wait --for=condition=Established` errors out while a fresh CRD has no conditions yet.
    health.wait_until("kube-apiserver", c.paths, _crds_established(c), 60,
                      "reporting the Argo Rollouts CRDs Established")


def _crds(c: Context) -> list[Path]:
    return sorted((c.bins["argo-rollouts"] / "crds").glob("*.yaml"))


def _crds_established(c: Context) -> Check:
    q = ('jsonpath={range .items[?(@.spec.group=="argoproj.io")]}'
         '{.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}')
    return kubectl_check(c.paths, c.kubectl, ["get", "crd", "-o", q],
                         lambda out: count_true(out, len(_crds(c)), "argoproj.io CRDs Established"))


def _argo(c: Context) -> list:
    return [c.bins["argo-rollouts"] / "rollouts-controller",
            f"--kubeconfig={c.paths.conf / 'argo-rollouts.kubeconfig'}", "--leader-elect=false",
            f"--healthzPort={c.ports['argo-healthz']}", f"--metricsPort={c.ports['argo-metrics']}",
            "--loglevel=info"]


def _argo_env(c: Context) -> dict:
    return child_env() | {"POD_NAMESPACE": "argo-rollouts"}


def _prometheus_files(c: Context) -> None:
    (c.paths.conf / "prometheus.yml").write_text(prometheus.config_yaml(c.paths))
    _empty_dir(c.paths.data / "prometheus")


def _prometheus(c: Context) -> list:
    cfg = c.paths.conf / "prometheus.yml"
    data = c.paths.data / "prometheus"
    return [c.bins["prometheus"] / "prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{c.ports['prometheus']}", "--storage.tsdb.retention.time=1d",
            "--web.enable-lifecycle", "--log.level=warn"]


def _nodes_ready(c: Context) -> Check:
    q = 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'
    return kubectl_check(c.paths, c.kubectl, ["get", "nodes", "-l", "type=kwok", "-o", q],
                         lambda out: count_true(out, c.nodes, "kwok nodes Ready"))


def _default_sa(c: Context) -> Check:
    args = ["get", "serviceaccount", "default", "-n", "default", "-o", "name"]
    return kubectl_check(c.paths, c.kubectl, args, lambda out: (bool(out.strip()), out))


def _healthz(port: str, path: str = "/healthz", tls: bool = False) -> Callable[[Context], Check]:
    def ready(c: Context) -> Check:
        if tls:
            return lambda: http_ok(c.url(port, path, "https"), insecure_ssl_context())
        return lambda: http_ok(c.url(port, path))
    return ready


def _apiserver_ready(c: Context) -> Check:
    return lambda: http_ok(c.url("apiserver", "/readyz", "https"), health.admin_ssl_context(c.paths))


COMPONENTS: list[Component] = [
    Component("etcd", "etcd", ("etcd", "etcd-peer"), _etcd, _healthz("etcd", "/health"), "healthy",
              timeout=30, wait_before_next=True, prepare=lambda c: _empty_dir(c.paths.data / "etcd")),
    Component("kube-apiserver", "kubernetes", ("apiserver",), _apiserver, _apiserver_ready, "ready",
              timeout=90, wait_before_next=True),
    Component("kube-controller-manager", "kubernetes", ("kcm",), _kcm, _healthz("kcm", tls=True), "healthy"),
    Component("kube-scheduler", "kubernetes", ("scheduler",), _scheduler, _healthz("scheduler", tls=True),
              "healthy"),
    Component("kwok", "kwok", ("kwok",), _kwok, _nodes_ready, "reporting nodes Ready",
              prepare=_kwok_config),
    Component("argo-rollouts", "argo-rollouts", ("argo-healthz", "argo-metrics"), _argo,
              _healthz("argo-healthz"), "healthy", prepare=_bootstrap, env=_argo_env),
    Component("prometheus", "prometheus", ("prometheus",), _prometheus, _healthz("prometheus", "/-/ready"),
              "ready", prepare=_prometheus_files),
]
ORDER = [comp.name for comp in COMPONENTS]
# Started with the cluster but not processes of their own: linked into <cluster>/bin for users.
TOOLS = {"kubectl": ("kubernetes", "kubectl"), "helm": ("helm", "helm"),
         "kubectl-argo-rollouts": ("kubectl-argo-rollouts", "kubectl-argo-rollouts")}
# Checked once everything runs: the cluster can make pods (the default ServiceAccount exists).
FINAL_CHECK = ("kube-controller-manager", _default_sa, "creating the default ServiceAccount")
