"""Whether the Argo Rollouts controller still hears changes, and a watchdog that restarts it when not.

The failure this guards against: on this test bed the controller has been seen alive (/healthz ok,
every workqueue empty, all workers idle) yet not seeing a Rollout update for up to three minutes,
until other writes came; the API server, etcd and kwok were serving all along. A test waiting on
the controller then times out. Not root-caused (see README, "The local control plane").

A beat changes one spec field of a Rollout that exists only for this (no pods) and times how long
the controller takes to report that generation observed. The watchdog beats every few seconds; a
beat not observed within its deadline counts as deaf: the controller is sent SIGQUIT (its goroutine
stacks go to its log) and started again with the same flags, and every slow or deaf beat is written
to <cluster>/logs/heartbeat.log. The beats are themselves Rollout writes, so they also push out
whatever a stalled watch holds back.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .config import ClusterError, Paths
from .health import kubectl_run

NAMESPACE = "agentroll-heartbeat"
NAME = "heartbeat"
MANIFEST = f"""apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {NAME}, namespace: {NAMESPACE}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: {NAME}}}}}
  template:
    metadata: {{labels: {{app: {NAME}}}}}
    spec:
      containers: [{{name: app, image: registry.local/heartbeat:1}}]
  strategy: {{canary: {{steps: [{{setWeight: 100}}]}}}}
"""
SLOW = 5.0  # a beat slower than this is logged


@dataclass
class Beat:
    at: float  # wall clock, when the change was written
    seconds: float | None  # until the controller observed it; None: not within the deadline
    error: str | None = None  # the change could not be written or read (not the controller's fault)


class Heartbeat:
    """Beats against one cluster's controller (kubectl of the cluster, its admin kubeconfig)."""

    def __init__(self, p: Paths, kubectl, poll: float = 0.25) -> None:
        self.p, self.kubectl, self.poll = p, kubectl, poll
        self.count = 0

    def _kubectl(self, *args: str, input: str | None = None) -> str:
        return kubectl_run(self.p, self.kubectl, list(args), input=input, timeout=20)

    def ensure(self) -> None:
        """Create the Rollout if missing; the next beat changes its field to a value it does not have."""
        self._kubectl("apply", "-f", "-", input=MANIFEST)
        current = self._kubectl("get", "rollout", NAME, "-n", NAMESPACE, "-o",
                                "jsonpath={.spec.progressDeadlineSeconds}").strip()
        self.count = int(current) - 600 if current.isdigit() else 0

    def beat(self, deadline: float) -> Beat:
        self.count += 1
        at = time.time()
        start = time.monotonic()
        patch = json.dumps({"spec": {"progressDeadlineSeconds": 600 + self.count % 1000}})
        try:
            generation = self._kubectl("patch", "rollout", NAME, "-n", NAMESPACE, "--type", "merge",
                                       "-p", patch, "-o", "jsonpath={.metadata.generation}").strip()
            while time.monotonic() - start < deadline:
                observed = self._kubectl("get", "rollout", NAME, "-n", NAMESPACE, "-o",
                                         "jsonpath={.status.observedGeneration}").strip()
                if observed == generation:
                    return Beat(at, time.monotonic() - start)
                time.sleep(self.poll)
        except ClusterError as err:
            return Beat(at, None, str(err))
        return Beat(at, None)


@dataclass
class Watchdog:
    """Beats every `every` seconds in a thread of its own; `on_deaf(beat)` when a beat is not observed
    within `deadline` (the caller restarts the controller)."""

    heart: Heartbeat
    on_deaf: Callable[[Beat], None]
    every: float = 5.0
    deadline: float = 30.0
    beats: list[Beat] = field(default_factory=list)
    deaf: list[Beat] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._beating = threading.Lock()  # held for a beat and whatever on_deaf does about it
        self._ready = False  # the Rollout to beat on exists
        self._thread = threading.Thread(target=self._run, name="controller-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.deadline + 30)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No beat inside: for whoever stops or restarts the controller on purpose. A beat under way
        is finished first."""
        with self._beating:
            yield

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with self._beating:
                self._beat_once()

    def _beat_once(self) -> None:
        if not self._ready:  # the Rollout to beat on; a failure is an error beat, tried again next time
            try:
                self.heart.ensure()
                self._ready = True
            except ClusterError as err:
                self.beats.append(Beat(time.time(), None, str(err)))
                self._log(self.beats[-1])
                return
        beat = self.heart.beat(self.deadline)
        self.beats.append(beat)
        if beat.seconds is None and beat.error is None:
            self.deaf.append(beat)
            self.on_deaf(beat)
        if beat.seconds is None or beat.seconds > SLOW:
            self._log(beat)

    def _log(self, beat: Beat) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(beat.at))
        if beat.error:
            what = f"error: {beat.error}"
        elif beat.seconds is None:
            what = f"deaf: not observed within {self.deadline:.0f} s; controller restarted"
        else:
            what = f"slow: observed after {beat.seconds:.1f} s"
        with open(self.heart.p.logs / "heartbeat.log", "a") as fh:
            fh.write(f"{when} {what}\n")

    def summary(self) -> str:
        seen = sorted(b.seconds for b in self.beats if b.seconds is not None)
        observed = (f"observed in median {statistics.median(seen):.2f} s, slowest {seen[-1]:.1f} s" if seen
                    else "none observed")
        return (f"controller heartbeat: {len(self.beats)} beats, {observed}; deaf {len(self.deaf)} times"
                f"{' (controller restarted each time)' if self.deaf else ''}; "
                f"{sum(b.error is not None for b in self.beats)} could not be written")
