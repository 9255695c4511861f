"""Offline injection: manifests in, mutated manifests out, with the webhook's own engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import jsonpatch

from kubectl_agentroll.mutate import mutate
from kubectl_agentroll.policy import Policy


@dataclass
class InjectResult:
    documents: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _describe(obj: Mapping) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return f"{obj.get('kind', 'object')}/{meta.get('name') or meta.get('generateName') or '?'}"


def admission_request(obj: Mapping, namespace: str) -> dict:
    """The AdmissionRequest the API server would send when `obj` is created."""
    api_version = obj.get("apiVersion")
    group, _, version = api_version.rpartition("/") if isinstance(api_version, str) else ("", "", "")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    return {
        "uid": "offline",
        "kind": {"group": group, "version": version, "kind": obj.get("kind")},
        "operation": "CREATE",
        "namespace": meta.get("namespace") or namespace,
        "name": meta.get("name"),
        "object": obj,
    }


def _objects(documents: Iterable) -> Iterator[tuple[list, int | None, Mapping]]:
    """Each object with where it sits, looking into `kind: List` documents too."""
    for index, doc in enumerate(documents):
        if isinstance(doc, Mapping) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for item_index, item in enumerate(doc["items"]):
                if isinstance(item, Mapping):
                    yield doc["items"], item_index, item
        elif isinstance(doc, Mapping):
            yield None, index, doc


def inject(documents: list, policy: Policy, namespace: str = "default") -> InjectResult:
    """Mutate every Rollout (and tool-server Deployment) among `documents`; other objects pass
    through unchanged. No cluster, so no network rules: requirements and cycles need the cache."""
    result = InjectResult(documents=list(documents))
    for container, index, obj in _objects(result.documents):
        decision = mutate(admission_request(obj, namespace), policy)
        label = _describe(obj)
        if not decision.allowed:
            result.errors.append(f"{label}: {decision.message}")
            continue
        result.warnings += [f"{label}: {w}" for w in decision.warnings]
        if decision.patch:
            mutated = jsonpatch.apply_patch(obj, decision.patch)
            (container if container is not None else result.documents)[index] = mutated
    return result
