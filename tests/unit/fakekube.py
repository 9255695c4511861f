"""An in-memory API server speaking `transport.Transport`, so commands run in unit tests.

It keeps objects with resourceVersions, answers GET/list (label and field selectors), merge and
JSON patches (with the API server's resourceVersion precondition: 409 on a stale one; status
subresource semantics: the main resource ignores status, the subresource ignores everything else),
server-side dry-run, and watches (events after a resourceVersion; 410 Gone when told). A test
makes the world move with `before_patch` (a concurrent writer between a command's read and its
patch) and `during_watch` (changes delivered one by one while a command watches).
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import jsonpatch

from kubectl_agentroll.kube import KubeError
from kubectl_agentroll.transport import JSON_PATCH, MERGE_PATCH

KINDS = {"rollouts": "Rollout", "replicasets": "ReplicaSet", "analysisruns": "AnalysisRun", "pods": "Pod",
         "deployments": "Deployment"}
WITH_STATUS = {"rollouts", "replicasets", "analysisruns", "pods", "deployments"}


def merge(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


SET_TERM = re.compile(r"([^\s()]+)\s+(in|notin)\s+\(([^)]*)\)")


def matches(labels: Mapping, selector: str | None) -> bool:
    """The API server's label selector: `k=v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`."""
    for term in re.split(r",(?![^(]*\))", selector or ""):
        term = term.strip()
        if not term:
            continue
        if (set_term := SET_TERM.fullmatch(term)) is not None:
            key, op, values = set_term.groups()
            if (labels.get(key) in {v.strip() for v in values.split(",")}) != (op == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.events: list[tuple[int, str, str, dict]] = []  # (rv, plural, type, object)
        self.rv = 100
        self.requests: list[tuple[str, str, object]] = []  # (method, path, body) as received
        self.selectors: list[tuple[str, str | None]] = []  # (plural, labelSelector) of each list
        self.before_patch: list[Callable[[FakeCluster], None]] = []
        self.during_watch: list[Callable[[FakeCluster], None]] = []
        self.admit: Callable[[dict, dict | None], dict] | None = None  # the webhook, if any
        self.step_interval = 1.0  # between during_watch steps: well over a redraw's 0.25 s throttle
        self._driver: threading.Thread | None = None
        self._step_lock = threading.Lock()
        self.gone = 0  # this many watch requests are answered 410 Gone (their resourceVersion too old)
        self.closed = False

    # --- setting the scene ------------------------------------------------------------------------

    def put(self, obj: dict, event: str | None = None) -> dict:
        """Create or replace an object as the controller would (status included)."""
        plural = _plural_of(obj)
        meta = obj.setdefault("metadata", {})
        key = (plural, meta.get("namespace", ""), meta["name"])
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", f"uid-{meta['name']}")
        kind = event or ("MODIFIED" if key in self.objects else "ADDED")
        self.objects[key] = copy.deepcopy(obj)
        self.events.append((self.rv, plural, kind, copy.deepcopy(obj)))
        return obj

    def delete(self, plural: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((plural, namespace, name))
        self.rv += 1
        self.events.append((self.rv, plural, "DELETED", obj))

    def get(self, plural: str, namespace: str, name: str) -> dict:
        return copy.deepcopy(self.objects[(plural, namespace, name)])

    def update(self, plural: str, namespace: str, name: str, change: Callable[[dict], None]) -> dict:
        obj = self.get(plural, namespace, name)
        change(obj)
        return self.put(obj)

    def patches(self) -> list[tuple[str, object]]:
        return [(p, b) for m, p, b in self.requests if m == "PATCH"]

    # --- transport.Transport -------------------------------------------------------------------------

    def request(self, method: str, path: str, *, what: str, query: Mapping | None = None,
                body: object = None, content_type: str | None = None) -> dict:
        self.requests.append((method, path, copy.deepcopy(body)))
        query = {k: v for k, v in (query or {}).items() if v is not None}
        plural, namespace, name, sub = _parse(path)
        if method == "GET" and name is None:
            return self._list(plural, namespace, query)
        key = (plural, namespace or "", name)
        if key not in self.objects:
            raise KubeError(f"{what} not found", 404)
        if method == "GET":
            return copy.deepcopy(self.objects[key])
        if method != "PATCH":
            raise AssertionError(f"the fake does not do {method}")
        if self.before_patch:  # one concurrent writer per patch
            self.before_patch.pop(0)(self)
        return self._patch(key, sub, body, content_type, query, what)

    def stream(self, path: str, *, what: str, query: Mapping | None = None) -> Iterator[dict]:
        query = dict(query or {})
        plural, namespace, _, _ = _parse(path)
        since = int(query.get("resourceVersion") or 0)
        with self._step_lock:
            gone, self.gone = self.gone > 0, max(0, self.gone - 1)
        if gone:
            yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
            return
        name = (query.get("fieldSelector") or "").removeprefix("metadata.name=") or None
        seen = since
        self._drive()
        while True:
            finished = not self._driver.is_alive()
            for rv, kind_plural, kind, obj in list(self.events):
                meta = obj["metadata"]
                if rv <= seen or kind_plural != plural or (namespace and meta.get("namespace") != namespace):
                    continue
                seen = rv
                if name and meta["name"] != name:
                    continue
                if not matches(meta.get("labels") or {}, query.get("labelSelector")):
                    continue
                yield {"type": kind, "object": copy.deepcopy(obj)}
            if finished:
                return  # as when timeoutSeconds ends a watch
            time.sleep(0.01)

    def _drive(self) -> None:
        """Start applying the during_watch changes, one per step_interval, once the first watch opens."""
        with self._step_lock:
            if self._driver is None:
                def run() -> None:
                    while self.during_watch:
                        time.sleep(self.step_interval)
                        self.during_watch.pop(0)(self)
                self._driver = threading.Thread(target=run, daemon=True)
                self._driver.start()

    def close(self) -> None:
        self.closed = True

    # --- the API server's rules --------------------------------------------------------------------

    def _list(self, plural: str, namespace: str | None, query: Mapping) -> dict:
        name = (query.get("fieldSelector") or "").removeprefix("metadata.name=") or None
        self.selectors.append((plural, query.get("labelSelector")))
        items = [copy.deepcopy(o) for (p, ns, n), o in sorted(self.objects.items())
                 if p == plural and (namespace is None or ns == namespace) and (name is None or n == name)
                 and matches(o["metadata"].get("labels") or {}, query.get("labelSelector"))]
        return {"kind": KINDS[plural] + "List", "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def _patch(self, key: tuple, sub: str | None, body: object, content_type: str | None,
               query: Mapping, what: str) -> dict:
        current = self.objects[key]
        if content_type == MERGE_PATCH:
            patched = merge(current, body)
        elif content_type == JSON_PATCH:
            try:
                patched = jsonpatch.apply_patch(current, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                raise KubeError(f"{what}: {err}", 422) from None
        else:
            raise KubeError(f"{what}: unsupported patch type {content_type}", 415)
        wanted_rv = patched["metadata"].get("resourceVersion")
        if wanted_rv != current["metadata"]["resourceVersion"]:
            raise KubeError(f"{what}: Operation cannot be fulfilled: the object has been modified; "
                            "please apply your changes to the latest version and try again", 409)
        if key[0] in WITH_STATUS:
            if sub == "status":
                patched = {**current, "status": patched.get("status")}
            else:
                patched = {**patched, "status": current.get("status")}
        if self.admit is not None:
            patched = self.admit(patched, current)
        if patched.get("spec") != current.get("spec"):
            patched["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        if query.get("dryRun") == "All":
            return copy.deepcopy(patched)
        return copy.deepcopy(self.put(patched))


def _plural_of(obj: Mapping) -> str:
    return next(p for p, k in KINDS.items() if k == obj.get("kind"))


def _parse(path: str) -> tuple[str, str | None, str | None, str | None]:
    """(plural, namespace, name, subresource) of an API path."""
    path, _, query = path.partition("?")
    assert not query, "queries go in `query`"
    parts = path.strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = None
    if parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    plural = parts[0]
    return plural, namespace, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None
