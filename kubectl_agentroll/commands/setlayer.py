"""`set`: change one layer of an agent (prompt, model, tools, image) in one patch."""

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
@click.command("set")
@click.argument("layer", type=click.Choice(["prompt", "model", "tools", "image"]))
@rollout_argument()
@click.argument("value")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none", show_default=True,
              help="server: send it with dryRun, show the resulting composite version, change nothing.")
@click.pass_obj
@kube_errors
def set_layer(g: Globals, layer, rollout, value, dry_run) -> None:
    """Change one layer of an agent: prompt, model, tools (name@version,...; "none" for no tools)
    or the agent container's image.

    Prompt, model and tools are the Rollout's agentroll.dev/ annotations (the webhook turns them
    into the composite version); image is the agent container's image (agentroll.dev/container,
    else the first). Prints which layer changes, and the webhook's warnings.

    Exit codes: 0 changed (or would change); 1 bad value, nothing to change, or an error.

    \b
    Examples:
      kubectl agentroll set prompt my-agent support-v8
      kubectl agentroll set tools my-agent crm-mcp-server@1.3.0,search@2.0.1
      kubectl agentroll set image my-agent ghcr.io/acme/agent:1.9.0 --dry-run=server
    """
    from kubectl_agentroll.actions import Refused, plan_set, with_conflict_retry
    from kubectl_agentroll.composite import COMPOSITE_VERSION
    from kubectl_agentroll.transport import JSON_PATCH, MERGE_PATCH

    s = open_session(g)
    server = dry_run == "server"

    def attempt():
        plan = plan_set(s.rollout(rollout), layer, value)
        result = s.patch(rollout, plan.body, content_type=JSON_PATCH if plan.json_patch else MERGE_PATCH,
                         dry_run=server)
        return plan, result

    try:
        plan, result = with_conflict_retry(attempt)
    except Refused as err:
        fail(str(err))
    finally:
        s.close()
    for warning in getattr(s.api, "warnings", []):
        click.echo(f"Warning: {warning}", err=True)
    for changed, old, new in plan.changes:
        click.echo(f"{changed}: {old} -> {new}")
    labelled = ((result or {}).get("metadata") or {}).get("labels", {}).get(COMPOSITE_VERSION)
    if labelled is None:
        after = "not labelled (the webhook did not mutate this Rollout)"
    else:
        after = labelled + ("" if labelled == plan.composite_after else
                            f" (expected {plan.composite_after}: the webhook computed otherwise)")
    click.echo(f"composite version: {plan.composite_before} -> {after}")
    click.echo(f"rollout '{rollout}' {'would be updated (server dry run)' if server else 'updated'}")
