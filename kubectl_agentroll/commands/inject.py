"""`inject`: the webhook's mutation offline, over manifests; needs no cluster."""

from __future__ import annotations

import json
import sys

import click

from kubectl_agentroll.commands.common import Globals, offline_options


def load_policy(path: str | None):
    from kubectl_agentroll.policy import BUILTIN, PolicyError, load_policy_file

    if path is None:
        return BUILTIN
    try:
        return load_policy_file(path)
    except PolicyError as err:
        raise click.ClickException(f"--policy-file {err}") from None


@offline_options
@click.command()
@click.option("-f", "--filename", required=True, type=click.File("r"),
              help="Manifest file (multi-document YAML), or - for standard input.")
@click.option("--policy-file", type=click.Path(dir_okay=False),
              help="Policy YAML (an AgentRollPolicy or its spec); built-in defaults otherwise.")
@click.pass_obj
def inject(g: Globals, filename, policy_file) -> None:
    """Print manifests as the webhook would admit them.

    Rollouts annotated agentroll.dev/inject: "true" get their composite version labels and the
    agent-quality analysis steps; everything else passes through unchanged. Warnings go to stderr.
    A denied Rollout prints its reason and exits 1, with nothing on stdout.

    \b
    Example:
      kubectl agentroll inject -f rollout.yaml | kubectl apply -f -
    """
    import yaml

    from kubectl_agentroll.inject import inject as run_inject

    policy = load_policy(policy_file)
    try:
        documents = [d for d in yaml.safe_load_all(filename) if d is not None]
    except yaml.YAMLError as err:
        raise click.ClickException(f"{filename.name}: not valid YAML: {_one_line(err)}") from None
    result = run_inject(documents, policy, namespace=g.namespace or "default")
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if result.errors:
        for error in result.errors:
            click.echo(f"error: {error}", err=True)
        sys.exit(1)
    if g.output == "json":
        out = result.documents[0] if len(result.documents) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": result.documents}
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(yaml.safe_dump_all(result.documents, sort_keys=False), nl=False)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
