"""The test bed's controller watchdog (scripts/localcluster/heartbeat.py), on a fake heart: deaf
beats call on_deaf, and nothing beats while it is paused, not even a beat that was under way."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from localcluster.heartbeat import Beat, Watchdog  # noqa: E402


class FakeHeart:
    """Beats that take `seconds` each and are observed unless `deaf` is set."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.deaf, self.started = seconds, False, []

    def ensure(self) -> None:
        pass

    def beat(self, deadline: float) -> Beat:
        self.started.append(time.monotonic())
        time.sleep(self.seconds)
        return Beat(time.time(), None if self.deaf else self.seconds)


def watching(heart: FakeHeart, on_deaf=lambda beat: None) -> Watchdog:
    watchdog = Watchdog(heart, on_deaf, every=0.01, deadline=1)
    watchdog._log = lambda beat: None  # no cluster directory to log into
    watchdog.start()
    return watchdog


def test_a_beat_not_observed_calls_on_deaf():
    heart, called = FakeHeart(), threading.Event()
    heart.deaf = True
    watchdog = watching(heart, lambda beat: called.set())
    try:
        assert called.wait(5)
    finally:
        watchdog.stop()
    assert watchdog.deaf and watchdog.deaf[0].seconds is None


def test_nothing_beats_while_paused_and_a_beat_under_way_ends_first():
    heart = FakeHeart(seconds=0.2)
    watchdog = watching(heart)
    try:
        while not heart.started:
            time.sleep(0.005)
        time.sleep(0.05)  # a beat is under way
        with watchdog.paused():
            entered = time.monotonic()
            beats = len(heart.started)
            time.sleep(0.3)
            assert len(heart.started) == beats
            assert entered >= heart.started[-1] + 0.2 - 0.01  # the beat under way had ended
        time.sleep(0.3)
        assert len(heart.started) > beats
    finally:
        watchdog.stop()
