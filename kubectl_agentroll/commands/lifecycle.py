"""promote, abort, retry, pause, restart: the Argo plugin's patches, each sent guarded by the
resourceVersion read and decided again on a conflict.
"""

from __future__ import annotations

import click

from kubectl_agentroll.commands.common import (
    Globals,
    fail,
    kube_errors,
    kubectl_options,
    open_session,
    rollout_argument,
)


def _act(s, name: str, decide) -> tuple:
    """Read the Rollout, decide the patch, send it guarded by the resourceVersion read; on 409
    Conflict (it changed in between) read and decide again."""
    from kubectl_agentroll.actions import send, with_conflict_retry
    from kubectl_agentroll.status import meta

    def attempt():
        rollout = s.rollout(name)
        patch, extra = decide(s, rollout)
        result = send(patch, lambda body, sub: s.patch(name, body, sub), meta(rollout).get("resourceVersion"))
        return rollout, result, extra

    return with_conflict_retry(attempt)


def _each(g: Globals, rollout: str | None, selector: str | None, act) -> None:
    """One Rollout, or each Rollout the selector matches (reported one by one; exit 1 if any failed)."""
    from kubectl_agentroll.actions import Refused
    from kubectl_agentroll.kube import KubeError
    from kubectl_agentroll.session import Session
    from kubectl_agentroll.transport import ROLLOUTS

    if bool(rollout) == bool(selector):
        fail("give a Rollout name or -l/--selector" + (", not both" if rollout else ""))
    s = open_session(g)
    try:
        if rollout:
            try:
                for line in act(s, rollout):
                    click.echo(line)
            except Refused as err:
                fail(str(err))
            return
        namespace = None if g.all_namespaces else s.namespace
        targets = s.list(ROLLOUTS, f"rollouts matching {selector!r}", namespace, selector)
        if not targets:
            fail(f"no Rollouts match -l {selector!r} in "
                  + ("any namespace" if namespace is None else f"namespace {namespace!r}"))
        failed = 0
        for obj in sorted(targets, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
            one = Session(s.api, obj["metadata"].get("namespace") or s.namespace)
            try:
                for line in act(one, obj["metadata"]["name"]):
                    click.echo(line)
            except (Refused, KubeError) as err:
                failed += 1
                click.echo(f"error: {err}", err=True)
        if failed:
            fail(f"{failed} of {len(targets)} Rollouts failed")
    finally:
        s.close()


_SELECTOR = click.option("-l", "--selector", help="Every Rollout with these labels (e.g. team=support).")


@kubectl_options
@click.command()
@rollout_argument(required=False)
@_SELECTOR
@click.option("--full", is_flag=True,
              help="Promote to the end: skip the remaining steps, pauses and analysis.")
@click.option("--force", is_flag=True,
              help="Promote even though the current step's analysis failed or was inconclusive.")
@click.pass_obj
@kube_errors
def promote(g: Globals, rollout, selector, full, force) -> None:
    """Move a paused agent Rollout to its next step (--full: to the end).

    Sends the same patches as `kubectl argo rollouts promote`, guarded by the Rollout's
    resourceVersion so a decision is never applied to a Rollout that changed since it was read.
    Refuses when the current step's AnalysisRun failed, errored or was inconclusive, saying what it
    measured, unless --force. With -l: every matching Rollout, each reported.

    Exit codes: 0 promoted; 1 refused or an error (with -l: any of them).

    \b
    Examples:
      kubectl agentroll promote my-agent              # next step
      kubectl agentroll promote my-agent --full       # skip the remaining steps
      kubectl agentroll promote my-agent --force      # over an inconclusive analysis
      kubectl agentroll promote -l team=support       # every paused support agent
    """
    from kubectl_agentroll.actions import analysis_problem, plan_promote
    from kubectl_agentroll.transport import ANALYSIS_RUNS

    def decide(s, obj):
        runs = []
        if not force and analysis_problem(obj):
            run_name = obj["status"]["canary"]["currentStepAnalysisRunStatus"].get("name")
            try:
                runs = [s.get(ANALYSIS_RUNS, run_name, f"analysisrun {run_name!r}")] if run_name else []
            except Exception:  # noqa: BLE001 - the values only enrich the refusal
                runs = []
        return plan_promote(obj, full=full, force=force, runs=runs), None

    def act(s, name):
        _act(s, name, decide)
        return [f"rollout '{name}' {'fully promoted' if full else 'promoted'}"]

    _each(g, rollout, selector, act)


@kubectl_options
@click.command()
@rollout_argument(required=False)
@_SELECTOR
@click.pass_obj
@kube_errors
def abort(g: Globals, rollout, selector) -> None:
    """Stop the canary and go back to the stable composite version.

    Sends the same patch as `kubectl argo rollouts abort` (status.abort: true): the controller
    scales the canary down and sends all traffic to stable. Prints the version rolled back to.
    What the canary agent already did (emails, tickets, API calls) is not undone. With -l: every
    matching Rollout, each reported.

    Exit codes: 0 aborted; 1 refused or an error (with -l: any of them).

    \b
    Examples:
      kubectl agentroll abort my-agent
      kubectl agentroll abort -l team=support -A      # stop every support canary, everywhere
      kubectl agentroll retry my-agent                # later: try the canary again
    """
    from kubectl_agentroll.actions import plan_abort

    def act(s, name):
        _, _, lines = _act(s, name, lambda s, obj: plan_abort(obj, s.replicasets(obj)))
        return [f"rollout '{name}' aborted", *lines]

    _each(g, rollout, selector, act)


def _simple(g: Globals, rollout: str, plan, done: str) -> None:
    from kubectl_agentroll.actions import Refused

    s = open_session(g)
    try:
        _act(s, rollout, lambda s, obj: (plan(obj), None))
    except Refused as err:
        fail(str(err))
    finally:
        s.close()
    click.echo(f"rollout '{rollout}' {done}")


@kubectl_options
@click.command()
@rollout_argument()
@click.pass_obj
@kube_errors
def retry(g: Globals, rollout) -> None:
    """Resume an aborted agent Rollout: the canary starts again from the first step.

    Sends the same patch as `kubectl argo rollouts retry rollout` (status.abort: false).
    Exit codes: 0 retried; 1 not aborted, or an error.

    \b
    Example:
      kubectl agentroll retry my-agent
    """
    from kubectl_agentroll.actions import plan_retry

    _simple(g, rollout, plan_retry, "retried")


@kubectl_options
@click.command()
@rollout_argument()
@click.pass_obj
@kube_errors
def pause(g: Globals, rollout) -> None:
    """Pause the Rollout where it is (spec.paused: true, as `kubectl argo rollouts pause`).

    `promote` resumes it. Exit codes: 0 paused; 1 already paused, or an error.

    \b
    Example:
      kubectl agentroll pause my-agent
    """
    from kubectl_agentroll.actions import plan_pause

    _simple(g, rollout, plan_pause, "paused")


@kubectl_options
@click.command()
@rollout_argument()
@click.pass_obj
@kube_errors
def restart(g: Globals, rollout) -> None:
    """Restart the Rollout's pods (spec.restartAt: now, as `kubectl argo rollouts restart`).

    The controller replaces the pods oldest first, within maxUnavailable; the version does not
    change. Exit codes: 0 restart requested; 1 an error.

    \b
    Example:
      kubectl agentroll restart my-agent
    """
    from datetime import datetime, timezone

    from kubectl_agentroll.actions import plan_restart

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _simple(g, rollout, lambda obj: plan_restart(obj, now), "restarts")
