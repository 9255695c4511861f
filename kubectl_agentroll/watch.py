"""Keeping a live copy of a few kinds of objects: one list, then one watch stream per kind (each in
its own thread, resumed from its last resourceVersion, re-listed on 410 Gone), and a loop that
redraws from the copy at most a few times a second and stops when the caller's condition holds.

`status -w` follows the Rollout, its ReplicaSets, its pods and its AnalysisRuns; `status -A -w` the
Rollouts and ReplicaSets of the namespace(s); `wait` the Rollout alone. Nothing is re-read per
event: the view is recomputed from the copy.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubectl_agentroll.kube import KubeError
from kubectl_agentroll.transport import Transport, path

WATCH_SECONDS = 300  # the server ends each watch after this; we resume from the last resourceVersion


@dataclass(frozen=True)
class Feed:
    key: str  # how the view asks for these objects
    kind: tuple[str, str]
    namespace: str | None
    label_selector: str | None = None
    name: str | None = None  # one object by metadata.name


class Mirror:
    """The objects of each feed, kept current by its watch; `changed()` blocks until one moves."""

    def __init__(self, api: Transport, feeds: list[Feed], idle_pause: float = 0.5) -> None:
        self.api, self.feeds, self.idle_pause = api, feeds, idle_pause
        self._objects: dict[str, dict[str, dict]] = {f.key: {} for f in feeds}
        self._lock = threading.Lock()
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    def start(self) -> None:
        """List every feed now; `watch` then keeps the copy current."""
        self._versions = [self._list(feed) for feed in self.feeds]

    def watch(self) -> None:
        for feed, rv in zip(self.feeds, self._versions, strict=True):
            threading.Thread(target=self._follow, args=(feed, rv), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def items(self, key: str) -> list[dict]:
        with self._lock:
            return list(self._objects[key].values())

    def changed(self, timeout: float | None) -> bool:
        """Wait up to `timeout` for a change (True), re-raising a watch's error in this thread."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return False
        while True:
            if isinstance(item, KubeError):
                raise item
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return True

    def _query(self, feed: Feed) -> dict:
        return {"labelSelector": feed.label_selector,
                "fieldSelector": f"metadata.name={feed.name}" if feed.name else None}

    def _what(self, feed: Feed) -> str:
        where = f"namespace {feed.namespace!r}" if feed.namespace else "all namespaces"
        return f"{feed.kind[1]} in {where}"

    def _list(self, feed: Feed) -> str:
        body = self.api.request("GET", path(feed.kind, feed.namespace), what=self._what(feed),
                                query=self._query(feed))
        with self._lock:
            self._objects[feed.key] = {_uid(o): o for o in body.get("items") or []}
        return str((body.get("metadata") or {}).get("resourceVersion") or "0")

    def _follow(self, feed: Feed, rv: str) -> None:
        what = f"watch of {self._what(feed)}"
        while not self._stop.is_set():
            started, seen = time.monotonic(), 0
            query = {**self._query(feed), "watch": "1", "allowWatchBookmarks": "true",
                     "resourceVersion": rv, "timeoutSeconds": str(WATCH_SECONDS)}
            try:
                for event in self.api.stream(path(feed.kind, feed.namespace), what=what, query=query):
                    if self._stop.is_set():
                        return
                    seen += 1
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") != 410:
                            raise KubeError(f"{what}: {obj.get('message', 'error')}", obj.get("code"))
                        rv = self._list(feed)  # our resourceVersion is too old: read afresh
                        self._events.put(feed.key)
                        break
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if kind == "BOOKMARK":
                        continue
                    with self._lock:
                        if kind == "DELETED":
                            self._objects[feed.key].pop(_uid(obj), None)
                        else:
                            self._objects[feed.key][_uid(obj)] = obj
                    self._events.put(feed.key)
            except KubeError as err:
                if err.status == 410:
                    rv = self._list(feed)
                    self._events.put(feed.key)
                    continue
                self._events.put(err)
                return
            if not seen and time.monotonic() - started < 1:
                self._stop.wait(self.idle_pause)  # a watch that ends at once: do not spin


def _uid(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def follow(mirror: Mirror, draw: Callable[[], object], done: Callable[[], object] | None = None,
           timeout: float | None = None, min_interval: float = 0.25,
           clock: Callable[[], float] = time.monotonic) -> object:
    """Draw now and after changes (at most once per `min_interval`); return done()'s first truthy
    answer, or None when `timeout` seconds pass. Ctrl-C propagates."""
    gc.enable()  # off while the command started (entry.py); this one runs for a while
    deadline = None if timeout is None else clock() + timeout
    mirror.start()
    try:
        draw()
        mirror.watch()
        last, pending = clock(), False
        while True:
            result = done() if done is not None else None
            if result:
                if pending:
                    draw()
                return result
            now = clock()
            if deadline is not None and now >= deadline:
                return None
            wait = min_interval - (now - last) if pending else None
            if deadline is not None:
                wait = min(wait if wait is not None else deadline - now, deadline - now)
            if mirror.changed(max(wait, 0) if wait is not None else 1.0):
                pending = True
            if pending and clock() - last >= min_interval:
                draw()
                last, pending = clock(), False
    finally:
        mirror.stop()
