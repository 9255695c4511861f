"""`wait`: whether a Rollout, as read, is where CI waits for it to be. Pure.

Exit codes (documented in `wait --help` and the README): 0 reached, 2 Degraded (aborted, failed
analysis, progress deadline), 3 timeout, 4 paused for a person when that was not what we waited for
(an indefinite pause step, a manual pause, an Inconclusive analysis); 1 is any other error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubectl_agentroll import status as st

REACHED, ERROR, DEGRADED, TIMEOUT, PAUSED = 0, 1, 2, 3, 4
CONDITIONS = ("healthy", "completed", "paused")


@dataclass(frozen=True)
class Verdict:
    code: int
    reason: str


def waits_for_a_person(rollout: Mapping) -> str | None:
    """Why a paused Rollout will not go on by itself, or None (running, or a timed pause)."""
    spec, status = st.spec_of(rollout), st.status_of(rollout)
    if spec.get("paused"):
        return "paused by hand (spec.paused)"
    for condition in st._list(status.get("pauseConditions")):
        reason = st._map(condition).get("reason")
        if reason == "CanaryPauseStep":
            step, index = st.current_step(rollout)
            duration = st._map(st._map(step).get("pause")).get("duration") if step else None
            if duration in (None, "", 0, "0"):
                return f"paused at step {index} until promoted (a pause step without duration)"
        elif reason == "BlueGreenPause":
            blue_green = st._map(st._map(spec.get("strategy")).get("blueGreen"))
            if blue_green.get("autoPromotionEnabled") is False or not blue_green.get("autoPromotionSeconds"):
                return "blue-green preview paused until promoted"
        elif reason == "InconclusiveAnalysisRun":
            return "paused on an Inconclusive analysis"
        elif reason:
            return f"paused ({reason})"
    return None


def verdict(rollout: Mapping, condition: str) -> Verdict | None:
    """The outcome for `wait --for condition`, or None to keep waiting."""
    if not st._generation_observed(rollout):
        return None  # the controller has not seen the latest spec: its status says nothing yet
    phase, message = st.rollout_phase(rollout)
    detail = f"{phase}" + (f": {message}" if message else "")
    if phase == "Degraded":
        return Verdict(DEGRADED, detail)
    if phase == "Healthy":
        return Verdict(REACHED, "Healthy" if condition != "paused" else "Healthy, finished without pausing")
    if phase == "Paused":
        if condition == "paused":
            return Verdict(REACHED, detail)
        person = waits_for_a_person(rollout)
        if person and condition == "healthy":
            return Verdict(PAUSED, person)
    return None
