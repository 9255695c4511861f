"""history, undo, version-diff: the revisions a Rollout keeps, going back to one, comparing two."""

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


@kubectl_options
@click.command()
@rollout_argument()
@click.pass_obj
@kube_errors
def history(g: Globals, rollout) -> None:
    """Every revision the Rollout still has: its composite version layer by layer, when it was
    created, and the outcome of its analysis, with the measured values that decided it.

    The controller keeps revisionHistoryLimit ReplicaSets (default 10) and analysisRunHistoryLimit
    AnalysisRuns (default 5 successful, 5 unsuccessful): older ones are not shown.
    Exit codes: 0; 1 an error.

    \b
    Examples:
      kubectl agentroll history my-agent
      kubectl agentroll history my-agent -o json
    """
    from kubectl_agentroll import views
    from kubectl_agentroll.render import render_history
    from kubectl_agentroll.revisions import history as history_of

    s = open_session(g)
    try:
        obj = s.rollout(rollout)
        revisions = history_of(obj, s.replicasets(obj), s.analysis_runs(obj))
    finally:
        s.close()
    if g.output != "table":
        click.echo(views.dump(g, [r.to_dict() for r in revisions]))
    elif not revisions:
        click.echo(f"{s.what(rollout)} has no revisions yet")
    else:
        click.echo(render_history(revisions, g.style()))


@kubectl_options
@click.command()
@rollout_argument()
@click.option("--to-revision", type=int, help="The revision to go back to (see `history`).")
@click.option("--to-version", help="The composite version to go back to (see `history`).")
@click.option("--force", is_flag=True, help="Even to a revision whose analysis failed or was inconclusive.")
@click.pass_obj
@kube_errors
def undo(g: Globals, rollout, to_revision, to_version, force) -> None:
    """Put an earlier revision back: its pod template AND its layer annotations, in one patch.

    Default target: the newest earlier revision whose analysis passed. The patch restores the
    revision's pod template (as `kubectl argo rollouts undo`) and the annotations the webhook reads
    (agentroll.dev/prompt-version, model-version, tools, container), so the webhook computes the
    same composite version again and the controller rolls back to that ReplicaSet. Refuses a target
    whose analysis failed or was inconclusive unless --force.

    Exit codes: 0 rolled back; 1 refused (no such revision, failed analysis) or an error.

    \b
    Examples:
      kubectl agentroll undo my-agent                 # the last revision that passed
      kubectl agentroll undo my-agent --to-revision 3
      kubectl agentroll undo my-agent --to-version 6113aff949
    """
    from kubectl_agentroll.actions import Refused, with_conflict_retry
    from kubectl_agentroll.revisions import history as history_of
    from kubectl_agentroll.revisions import plan_undo, undo_target
    from kubectl_agentroll.status import find_by_hash, replicasets_of
    from kubectl_agentroll.transport import JSON_PATCH

    s = open_session(g)

    def attempt():
        obj = s.rollout(rollout)
        replicasets = s.replicasets(obj)
        target = undo_target(obj, history_of(obj, replicasets, s.analysis_runs(obj)), to_revision,
                             to_version, force)
        rs = find_by_hash(replicasets_of(obj, replicasets), target.pod_template_hash)
        s.patch(rollout, plan_undo(obj, rs), content_type=JSON_PATCH)
        return target

    try:
        target = with_conflict_retry(attempt)
    except Refused as err:
        fail(str(err))
    finally:
        s.close()
    v = target.version
    layers = ", ".join(f"{layer} {v.raw[layer] if v.raw[layer] != 'unset' else v.layers[layer]}"
                       for layer in ("prompt", "model", "tools", "image"))
    click.echo(f"rollout '{rollout}' rolled back to revision {target.revision}, composite version "
               f"{v.composite} ({layers})")


@kubectl_options
@click.command("version-diff")
@rollout_argument()
@click.option("--revision", type=int, help="The older revision (default: stable, or the one before --to).")
@click.option("--to", "to", type=int, help="The newer revision (default: the canary, or the latest).")
@click.pass_obj
@kube_errors
def version_diff(g: Globals, rollout, revision, to) -> None:
    """Which layers differ between two revisions, with their raw values and images.

    Default: stable vs canary, or the last two revisions when nothing is in flight. Warns when
    more than one layer changed: a regression could then not be attributed to one layer.

    \b
    Examples:
      kubectl agentroll version-diff my-agent
      kubectl agentroll version-diff my-agent --revision 3 --to 5 -o json
    """
    from kubectl_agentroll import views
    from kubectl_agentroll.render import tabulate
    from kubectl_agentroll.status import DiffError
    from kubectl_agentroll.status import version_diff as diff_of

    s = open_session(g)
    try:
        obj = s.rollout(rollout)
        replicasets = s.replicasets(obj)
    finally:
        s.close()
    try:
        diff = diff_of(obj, replicasets, revision, to)
    except DiffError as err:
        fail(str(err))
    if g.output != "table":
        click.echo(views.dump(g, diff.to_dict()))
        return
    old, new = diff.old, diff.new
    rows = []
    for row in diff.rows:
        rows.append([row.layer, row.old, row.new, "changed" if row.changed else ""])
    rows.append(["composite", old.composite, new.composite,
                 "changed" if old.composite != new.composite else ""])
    click.echo(tabulate(rows, headers=["LAYER", f"rev {old.revision} ({old.role})",
                                       f"rev {new.revision} ({new.role})", ""]))
    raw = [[row.layer, row.old_raw, row.new_raw] for row in diff.rows if row.changed]
    if raw:
        click.echo("\nRaw values of the changed layers:")
        click.echo(tabulate(raw, headers=["LAYER", f"rev {old.revision}", f"rev {new.revision}"]))
    click.echo(f"\nimage: {old.image or '-'} -> {new.image or '-'}")
    if diff.warning:
        click.echo(f"Warning: {diff.warning}", err=True)
