"""One command's view of the cluster: a transport, a namespace, and the reads every command shares.

Commands decide with the pure modules and act through `patch` (one small function); the transport is
`rest.Rest` in real use and an in-memory fake in the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kubectl_agentroll import status as st
from kubectl_agentroll.transport import (
    ANALYSIS_RUNS,
    MERGE_PATCH,
    PODS,
    REPLICA_SETS,
    ROLLOUTS,
    Transport,
    path,
)


def what(name: str, namespace: str) -> str:
    return f"rollout {name!r} in namespace {namespace!r}"


def with_resource_version(body: dict, rollout: Mapping) -> dict:
    """A merge patch that applies only to the Rollout as read: the API server answers 409 Conflict
    when metadata.resourceVersion has moved on since (someone else wrote in between)."""
    rv = st.meta(rollout).get("resourceVersion")
    if not rv:
        return body
    return {**body, "metadata": {**(body.get("metadata") or {}), "resourceVersion": rv}}


class Session:
    def __init__(self, api: Transport, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def what(self, name: str) -> str:
        return what(name, self.namespace)

    def get(self, kind, name: str, what: str, namespace: str | None = None) -> dict:
        return self.api.request("GET", path(kind, namespace or self.namespace, name), what=what)

    def list(self, kind, what: str, namespace: str | None, selector: str | None = None) -> list:
        body = self.api.request("GET", path(kind, namespace), what=what, query={"labelSelector": selector})
        return body.get("items") or []

    def rollout(self, name: str) -> dict:
        return self.get(ROLLOUTS, name, self.what(name))

    def patch(self, name: str, body: object, subresource: str | None = None,
              content_type: str = MERGE_PATCH, dry_run: bool = False) -> dict:
        return self.api.request("PATCH", path(ROLLOUTS, self.namespace, name, subresource),
                                what=self.what(name), body=body, content_type=content_type,
                                query={"dryRun": "All"} if dry_run else None)

    def replicasets(self, rollout: Mapping) -> list:
        name = st.meta(rollout).get("name", "")
        return self.list(REPLICA_SETS, f"replicasets of {self.what(name)}", self.namespace,
                         rs_selector(rollout))

    def analysis_runs(self, rollout: Mapping, pod_hash: str | None = None) -> list:
        """The Rollout's AnalysisRuns: of one pod template hash, or all of them."""
        name = st.meta(rollout).get("name", "")
        selector = f"{st.POD_TEMPLATE_HASH}={pod_hash}" if pod_hash else None
        runs = self.list(ANALYSIS_RUNS, f"analysisruns of {self.what(name)}", self.namespace, selector)
        uid = st.meta(rollout).get("uid")
        return [r for r in runs if not uid or st.owned_by(r, uid)]

    def pods(self, rollout: Mapping) -> list:
        name = st.meta(rollout).get("name", "")
        return self.list(PODS, f"pods of {self.what(name)}", self.namespace, rs_selector(rollout))

    def close(self) -> None:
        close = getattr(self.api, "close", None)
        if close is not None:
            close()


def together(*calls: Callable[[], object]) -> list:
    """The calls' results, in order, the calls made at the same time (the transport serves each on a
    connection of its own, so the API server works on them at once); the first error is raised."""
    import threading

    results: list = [None] * len(calls)
    errors: list = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as err:  # noqa: BLE001 - raised again on the caller's thread below
            errors[i] = err

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for err in errors:
        if err is not None:
            raise err
    return results


def rs_selector(rollout: Mapping) -> str:
    """The Rollout's own selector (its ReplicaSets and pods carry those labels), else every
    Rollout-made ReplicaSet."""
    match = st._map(st._map(st.spec_of(rollout).get("selector")).get("matchLabels"))
    return ",".join(f"{k}={v}" for k, v in sorted(match.items())) or st.POD_TEMPLATE_HASH
