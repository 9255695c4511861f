"""Real-world-shaped Rollouts and AdmissionRequests for the engine tests."""

from __future__ import annotations

import copy

AGENT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "name": "support-agent",
        "namespace": "agents",
        "annotations": {
            "agentroll.dev/inject": "true",
            "agentroll.dev/prompt-version": "support-v7",
            "agentroll.dev/tools": "crm-mcp-server@1.2.0,search@2.0.1",
        },
    },
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": {"app": "support-agent"}},
        "template": {
            "metadata": {"labels": {"app": "support-agent"}},
            "spec": {
                "containers": [
                    {
                        "name": "agent",
                        "image": "ghcr.io/example/support-agent:1.8.2",
                        "env": [{"name": "ANTHROPIC_MODEL", "value": "claude-sonnet-4-20250514"}],
                    }
                ]
            },
        },
        "strategy": {
            "canary": {
                "steps": [
                    {"setWeight": 5},
                    {"pause": {"duration": "5m"}},
                    {"setWeight": 50},
                    {"pause": {}},
                ]
            }
        },
    },
}


def rollout(**changes) -> dict:
    """A deep copy of AGENT; keyword `strategy`, `annotations`, `template_metadata` replace parts."""
    obj = copy.deepcopy(AGENT)
    if "strategy" in changes:
        obj["spec"]["strategy"] = changes.pop("strategy")
    if "annotations" in changes:
        obj["metadata"]["annotations"] = changes.pop("annotations")
    if "template_metadata" in changes:
        obj["spec"]["template"]["metadata"] = changes.pop("template_metadata")
    assert not changes, changes
    return obj


def request(obj, operation: str = "CREATE", old=None, kind=("argoproj.io", "Rollout")) -> dict:
    req = {
        "uid": "0b9c2f6e-1111-4ad2-9f0e-000000000001",
        "kind": {"group": kind[0], "version": "v1alpha1", "kind": kind[1]},
        "resource": {"group": kind[0], "version": "v1alpha1", "resource": "rollouts"},
        "operation": operation,
        "namespace": "agents",
        "name": ((obj.get("metadata") if isinstance(obj, dict) else None) or {}).get("name"),
        "object": obj,
    }
    if old is not None:
        req["oldObject"] = old
    return req
