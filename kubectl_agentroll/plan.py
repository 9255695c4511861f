"""The rollout's look plan: canary weights, pause lengths and the look interval (pure).

The judge spends its error over the *planned* information of the plan, so boundaries depend on the
plan alone, never on the data: the information of a comparison of two means grows like
1 / (1/n_canary + 1/n_stable), and with steady traffic n_canary and n_stable grow with the time
integrals of the weight w and of 1 - w, so the task rate cancels from the information fraction.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from functools import cached_property

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, what: str) -> float:
    """'300', '300s', '5m', '1.5h' -> seconds (> 0)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{what}: {text.strip()!r} is not a duration (e.g. 300, 300s, 5m, 1h)")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{what}: duration must be > 0, got {text.strip()!r}")
    return seconds


@dataclass(frozen=True)
class Step:
    weight: float  # percent of traffic on the canary, 0 < weight < 100
    duration_s: float


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    interval_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("plan: no steps (expected e.g. '5:300,25:600,50:600')")
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError(f"plan: interval must be > 0 seconds, got {self.interval_s!r}")
        for i, s in enumerate(self.steps, 1):
            if not (math.isfinite(s.weight) and 0 < s.weight < 100):
                raise ValueError(f"plan: step {i}: weight must be > 0 and < 100 percent, got {s.weight:g}")
            if not (math.isfinite(s.duration_s) and s.duration_s > 0):
                raise ValueError(f"plan: step {i}: duration must be > 0 seconds, got {s.duration_s:g}")
        if self.total_s / self.interval_s > 1000:
            raise ValueError(f"plan: more than 1000 looks ({self.total_s:g}s every {self.interval_s:g}s)")

    @classmethod
    def parse(cls, text: str, interval_s: float | str = 60.0) -> Plan:
        """'5:300,25:600,50:600' (weight percent : pause, durations as in parse_duration)."""
        if isinstance(interval_s, str):
            interval_s = parse_duration(interval_s, "plan interval")
        steps = []
        for i, part in enumerate(text.split(","), 1):
            weight, sep, duration = part.partition(":")
            if not sep:
                raise ValueError(f"plan: step {i}: {part.strip()!r} is not weight:duration (e.g. 5:300)")
            try:
                w = float(weight)
            except ValueError:
                raise ValueError(f"plan: step {i}: weight {weight.strip()!r} is not a number") from None
            steps.append(Step(w, parse_duration(duration, f"plan: step {i}")))
        return cls(tuple(steps), float(interval_s))

    def __str__(self) -> str:
        return ",".join(f"{s.weight:g}:{s.duration_s:g}" for s in self.steps)

    @property
    def total_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    @cached_property
    def step_ends(self) -> tuple[float, ...]:
        ends, t = [], 0.0
        for s in self.steps:
            t += s.duration_s
            ends.append(t)
        return tuple(ends)

    @cached_property
    def grid(self) -> tuple[float, ...]:
        """Planned look times: every interval, plus the end of every step."""
        times = {k * self.interval_s for k in range(1, int(self.total_s // self.interval_s) + 1)}
        times.update(self.step_ends)
        return tuple(sorted(round(t, 6) for t in times))

    def step_of(self, at_s: float) -> int:
        """Index of the step running at at_s (the last one after the plan ends)."""
        for i, end in enumerate(self.step_ends):
            if at_s <= end + 1e-6:
                return i
        return len(self.steps) - 1

    def information(self, at_s: float) -> float:
        """Planned information at at_s, per unit of task rate: 1 / (1/W + 1/(t - W)), W the weight
        integral; after the plan ends the last weight continues."""
        canary, t = 0.0, 0.0
        for s in self.steps:
            d = min(s.duration_s, max(at_s - t, 0.0))
            canary += s.weight / 100 * d
            t += s.duration_s
        if at_s > t:
            canary += self.steps[-1].weight / 100 * (at_s - t)
        stable = at_s - canary
        if canary <= 0 or stable <= 0:
            return 0.0
        return 1.0 / (1.0 / canary + 1.0 / stable)

    def slot(self, at_s: float) -> int:
        """The planned look nearest to at_s (index into grid); past the end, one slot per interval."""
        grid = self.grid
        end = grid[-1]
        if at_s > end + self.interval_s / 2:
            return len(grid) - 1 + round((at_s - end) / self.interval_s)
        i = bisect.bisect_left(grid, at_s)
        if i == len(grid) or (i > 0 and at_s - grid[i - 1] < grid[i] - at_s):
            return i - 1
        return i
