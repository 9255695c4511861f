"""What a command needs from the API server: two methods, and the paths it asks them for.

`Transport` is the whole interface: `rest.Rest` speaks it over HTTPS, the unit tests' in-memory
cluster speaks it too, so every command runs without a cluster in tests. Errors are
`kube.KubeError` (one line, with the HTTP status when there was one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

ROLLOUTS = ("/apis/argoproj.io/v1alpha1", "rollouts")
ANALYSIS_RUNS = ("/apis/argoproj.io/v1alpha1", "analysisruns")
REPLICA_SETS = ("/apis/apps/v1", "replicasets")
DEPLOYMENTS = ("/apis/apps/v1", "deployments")
PODS = ("/api/v1", "pods")


class Transport(Protocol):
    def request(self, method: str, path: str, *, what: str, query: Mapping | None = None,
                body: object = None, content_type: str | None = None) -> dict:
        """One JSON request; the decoded answer. `what` names the object in errors."""

    def stream(self, path: str, *, what: str, query: Mapping | None = None) -> Iterator[dict]:
        """A watch: decoded events until the server (or `timeoutSeconds`) ends it."""


def path(kind: tuple[str, str], namespace: str | None, name: str | None = None,
         subresource: str | None = None) -> str:
    prefix, plural = kind
    p = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    if name:
        p += f"/{name}"
    if subresource:
        p += f"/{subresource}"
    return p
