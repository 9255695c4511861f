"""Reading Rollouts and their pods from the API server (the only I/O with the cluster)."""
from __future__ import annotations

import json

from kubernetes import client, config
from kubernetes.client.rest import ApiException


class FollowError(Exception):
    """A one-line reason the Rollout could not be read this time."""


class Follower:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, OSError) as e:
            raise FollowError(f"cannot load kubeconfig: {e}") from None
        self.custom = client.CustomObjectsApi()
        self.core = client.CoreV1Api()

    def read(self, namespace: str, name: str) -> tuple[dict, list[dict]]:
        """The Rollout and the pods its selector matches, as plain API dicts."""
        try:
            rollout = self.custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace,
                                                               "rollouts", name, _request_timeout=5)
            selector = ((rollout.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            raw = self.core.list_namespaced_pod(
                namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items()),
                _preload_content=False, _request_timeout=5)
            pods = json.loads(raw.data)["items"]
        except ApiException as e:
            raise FollowError(f"rollout {namespace}/{name}: {e.status} {e.reason}") from None
        except (OSError, ValueError) as e:
            raise FollowError(f"rollout {namespace}/{name}: {type(e).__name__}: {e}") from None
        return rollout, pods
