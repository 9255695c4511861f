"""`status`: one agent Rollout layer by layer, or all of them; once or live (-w)."""

from __future__ import annotations

import sys

import click

from kubectl_agentroll.commands.common import (
    Globals,
    fail,
    kube_errors,
    kubectl_options,
    open_session,
    rollout_argument,
)


@kubectl_options
@click.command()
@rollout_argument(required=False)
@click.option("-w", "--watch", is_flag=True,
              help="Keep watching the Rollout, its ReplicaSets, pods and AnalysisRuns; redraw in place.")
@click.option("--until-done", is_flag=True,
              help="With -w: exit when the rollout is Healthy (0) or Degraded (2).")
@click.pass_obj
@kube_errors
def status(g: Globals, rollout, watch, until_done) -> None:
    """Show one agent Rollout layer by layer, or list them all.

    With a name: phase and message (as the Argo plugin computes them), step, set and actual
    weight, the stable and canary composite versions layer by layer (from the ReplicaSets'
    labels), replicas, the current revision's AnalysisRuns with each metric's last measured
    values and its success/failure condition, and the tree of revisions, ReplicaSets, pods and
    AnalysisRuns. Colour on a terminal (not with --no-color, NO_COLOR or a pipe).

    Without a name: one line per agent Rollout in the namespace (-A: all namespaces).

    Exit codes: 0; 1 an error; with --until-done, 2 when the rollout ends Degraded.

    \b
    Examples:
      kubectl agentroll status my-agent -n agents
      kubectl agentroll status my-agent -w            # redraw on every change (Ctrl-C stops)
      kubectl agentroll status my-agent -w --until-done
      kubectl agentroll status -A                     # all agent Rollouts, stable -> canary
      kubectl agentroll status my-agent -o json       # the display model as data
    """
    from kubectl_agentroll import views
    from kubectl_agentroll.render import render_rows

    if rollout and g.all_namespaces:
        fail("a Rollout name cannot be combined with -A/--all-namespaces")
    if until_done and not (watch and rollout):
        fail("--until-done needs -w and a Rollout name")
    s = open_session(g)
    code = 0
    try:
        if watch and rollout:
            code = views.watch_one(g, s, rollout, until_done)
        elif watch:
            views.watch_all(g, s)
        elif rollout:
            _, (model, nodes) = views.fetch_one(s, rollout, tree=True)
            views.emit(g, *views.one_view(g, model, nodes), False, True)
        else:
            rows = views.fetch_all(s, g)
            text = render_rows(rows, g.all_namespaces, g.style())
            views.emit(g, text, [r.to_dict() for r in rows] if g.output != "table" else None, False, True)
    except KeyboardInterrupt:
        click.echo("", err=True)
    finally:
        s.close()
    sys.exit(code)
