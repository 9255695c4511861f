"""The thin layer between our commands and the Kubernetes API: config loading and one-line errors.

The `kubernetes` package is slow to import, so it is imported here only when a command needs the
cluster (`inject` never does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class KubeError(Exception):
    """An API call failed; the message is one line a person can act on."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_client(kubeconfig: str | None = None, context: str | None = None):
    """An ApiClient for `--kubeconfig`/`KUBECONFIG`/`~/.kube/config` and `--context`, or in-cluster."""
    import os

    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        if kubeconfig or os.environ.get("KUBECONFIG") or os.path.exists(
            os.path.expanduser("~/.kube/config")
        ):
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, TypeError, ValueError) as err:
        where = f"--context {context}" if context and "context" in str(err).lower() else "kubeconfig"
        raise KubeError(f"{where}: {str(err).splitlines()[0] if str(err) else err!r}") from None
    return client.ApiClient(configuration)


def _reason(err) -> str:
    try:
        body = json.loads(err.body or "{}")
        message = body.get("message")
    except (ValueError, AttributeError):
        message = None
    return message or err.reason or f"HTTP {err.status}"


def call(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """Call an API method; any failure becomes a KubeError naming `what`."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except ApiException as err:
        if err.status == 404:
            raise KubeError(f"{what} not found", 404) from None
        if err.status in (401, 403):
            raise KubeError(f"{what}: not allowed: {_reason(err)}", err.status) from None
        raise KubeError(f"{what}: {_reason(err)}", err.status) from None
    except HTTPError as err:
        raise KubeError(f"{what}: cannot reach the API server: {err}") from None
