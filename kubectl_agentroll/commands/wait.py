"""`wait`: block until a Rollout gets somewhere, and say so in the exit code (for CI)."""

from __future__ import annotations

import sys

import click

from kubectl_agentroll.commands.common import (
    EXIT_ERROR,
    Globals,
    fail,
    kube_errors,
    kubectl_options,
    open_session,
    rollout_argument,
)


@kubectl_options
@click.command()
@rollout_argument()
@click.option("--for", "condition", type=click.Choice(["healthy", "completed", "paused"]), default="healthy",
              show_default=True, help="What to wait for (see above).")
@click.option("--timeout", default="10m", show_default=True,
              help="Give up after this long: 30s, 10m, 1h (0: never).")
@click.pass_obj
@kube_errors
def wait(g: Globals, rollout, condition, timeout) -> None:
    """Block until the Rollout gets there; the exit code says how it ended (for CI).

    \b
    --for healthy    fully promoted and Healthy; stops early at a pause that needs a person
    --for completed  Healthy or Degraded, waiting through any pause
    --for paused     Paused (at any pause), or Healthy having finished without pausing

    \b
    Exit codes:
      0  reached
      1  error (the Rollout does not exist, the API server cannot be reached, bad flags)
      2  Degraded: aborted, failed analysis, progress deadline exceeded
      3  timeout
      4  paused and waiting for a person (with --for healthy)
    On 2 and 4 the reason is printed, with the measured values of the analysis that decided.

    \b
    Examples:
      kubectl agentroll wait my-agent --for healthy --timeout 15m && ./smoke-test
      kubectl agentroll wait my-agent --for paused    # the canary reached its first gate
    """
    from kubectl_agentroll import waiting
    from kubectl_agentroll.kubeconfig import parse_duration
    from kubectl_agentroll.transport import ROLLOUTS
    from kubectl_agentroll.watch import Feed, Mirror, follow

    try:
        seconds = parse_duration(timeout, "--timeout")
    except ValueError as err:
        fail(str(err))
    s = open_session(g)
    try:
        s.rollout(rollout)  # a missing Rollout is an error now, not a timeout later
        mirror = Mirror(s.api, [Feed("rollout", ROLLOUTS, s.namespace, name=rollout)])
        found = {}

        def done():
            current = mirror.items("rollout")
            if not current:
                found["verdict"] = waiting.Verdict(EXIT_ERROR, f"{s.what(rollout)} was deleted")
                return True
            found["verdict"] = waiting.verdict(current[0], condition)
            found["rollout"] = current[0]
            return found["verdict"] is not None

        if follow(mirror, lambda: None, done, timeout=seconds or None) is None:
            fail(f"{s.what(rollout)}: timed out after {timeout} waiting for {condition} "
                  f"(now: {_phase_line(found.get('rollout'))})", waiting.TIMEOUT)
        verdict = found["verdict"]
        if verdict.code == waiting.REACHED:
            click.echo(f"rollout '{rollout}' {verdict.reason}")
            return
        lines = _measured(s, found["rollout"]) if "rollout" in found else []
        click.echo(f"error: rollout '{rollout}': {verdict.reason}", err=True)
        for line in lines:
            click.echo(f"  {line}", err=True)
        sys.exit(verdict.code)
    finally:
        s.close()


def _phase_line(rollout) -> str:
    from kubectl_agentroll.status import rollout_phase

    if not rollout:
        return "unknown"
    phase, message = rollout_phase(rollout)
    return phase + (f": {message}" if message else "")


def _measured(s, rollout) -> list[str]:
    """What the current revision's analysis measured, where it did not pass."""
    from kubectl_agentroll.revisions import history

    current = (rollout.get("status") or {}).get("currentPodHash")
    try:
        runs = s.analysis_runs(rollout, current)
        replicasets = s.replicasets(rollout)
    except Exception:  # noqa: BLE001 - the values only enrich the message
        return []
    revision = next((r for r in history(rollout, replicasets, runs) if r.pod_template_hash == current), None)
    if revision is None or revision.analysis == "Successful":
        return []
    return revision.decisive
