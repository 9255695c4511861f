"""The cluster's certificates (one CA, the apiserver's serving pair, one client pair per
component) and kubeconfigs. One path: the `cryptography` package, through webhook/certs.py."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import ClusterError, Paths

SERVICE_IP = "10.96.0.1"

CLIENTS = {
    # file stem: (CN, O)
    "admin": ("agentroll-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    "argo-rollouts": ("argo-rollouts-controller", "system:masters"),
    # apiserver -> aggregated API servers (requestheader authentication)
    "front-proxy-client": ("front-proxy-client", None),
}
APISERVER_DNS = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]


def _needed() -> list[str]:
    return (["ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "sa.key", "sa.pub"]
            + [f"{s}.{e}" for s in CLIENTS for e in ("crt", "key")])


def ensure_pki(p: Paths) -> None:
    """Create the PKI once per cluster directory; an incomplete one is made anew."""
    if all((p.pki / n).exists() for n in _needed()):
        return
    try:
        from webhook import certs
    except ImportError as e:
        raise ClusterError(f"cannot generate certificates: {e} (run with the project's Python: "
                           "`pip install .` brings `cryptography`)") from None
    if p.pki.exists():
        shutil.rmtree(p.pki)
    p.pki.mkdir(parents=True)
    os.chmod(p.pki, 0o700)
    pem = certs.PEM
    ca, ca_key = certs.new_ca("agentroll-local-ca", days=3650)
    files = {"ca.crt": ca.public_bytes(pem), "ca.key": certs.key_pem(ca_key)}
    cert, key = certs.issue(ca, ca_key, "kube-apiserver", dns_names=APISERVER_DNS,
                            ips=["127.0.0.1", "::1", SERVICE_IP], days=3650)
    files |= {"apiserver.crt": cert.public_bytes(pem), "apiserver.key": certs.key_pem(key)}
    for stem, (cn, org) in CLIENTS.items():
        cert, key = certs.issue(ca, ca_key, cn, organization=org, client=True, days=3650)
        files |= {f"{stem}.crt": cert.public_bytes(pem), f"{stem}.key": certs.key_pem(key)}
    sa_key, sa_pub = certs.new_signing_key()
    files |= {"sa.key": sa_key, "sa.pub": sa_pub}
    for name, data in files.items():
        path = p.pki / name
        path.write_bytes(data)
        os.chmod(path, 0o600 if name.endswith(".key") else 0o644)


def write_kubeconfig(path: Path, p: Paths, api_port: int, user: str) -> None:
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: agentroll-local
  cluster:
    server: https://127.0.0.1:{api_port}
    certificate-authority: {p.pki / 'ca.crt'}
users:
- name: {user}
  user:
    client-certificate: {p.pki / (user + '.crt')}
    client-key: {p.pki / (user + '.key')}
contexts:
- name: agentroll-local
  context:
    cluster: agentroll-local
    user: {user}
current-context: agentroll-local
"""
    path.write_text(text)
    os.chmod(path, 0o600)
