"""A Helm post-renderer that points the chart's webhooks at a local process instead of the
in-cluster Service: there is no kubelet here, so the webhook runs beside the control plane.

    helm install RELEASE CHART *webhookrender.helm_args("https://127.0.0.1:8443/mutate", ca_pem)
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path


def helm_args(url: str, ca_pem: bytes) -> list[str]:
    """The `helm install/upgrade` flags that run this file, with this interpreter, as the
    post-renderer for a webhook served at `url` with a certificate signed by `ca_pem`."""
    ca = base64.b64encode(ca_pem).decode()
    return ["--post-renderer", sys.executable, "--post-renderer-args", str(Path(__file__).resolve()),
            "--post-renderer-args", url, "--post-renderer-args", ca]


def render(text: str, url: str, ca: str) -> str:
    import yaml

    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if doc["kind"] == "MutatingWebhookConfiguration":
            for hook in doc["webhooks"]:
                hook["clientConfig"] = {"url": url, "caBundle": ca}
    return yaml.safe_dump_all(docs)


if __name__ == "__main__":
    sys.stdout.write(render(sys.stdin.read(), sys.argv[1], sys.argv[2]))
