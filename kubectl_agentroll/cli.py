"""`kubectl agentroll`: the command line. Commands fetch, call the pure modules, and print."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from kubectl_agentroll.policy import BUILTIN, Policy, PolicyError, policy_from_document

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class Globals:
    namespace: str | None
    all_namespaces: bool
    context: str | None
    kubeconfig: str | None
    output: str

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        from kubectl_agentroll.kube import current_namespace

        return current_namespace(self.kubeconfig, self.context)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("-n", "--namespace", help="Namespace (default: the kubeconfig context's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Across all namespaces (status).")
@click.option("--context", "kube_context", help="Kubeconfig context to use.")
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: $KUBECONFIG).")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table",
              show_default=True, help="Output format for commands that print data.")
@click.pass_context
def main(ctx: click.Context, namespace, all_namespaces, kube_context, kubeconfig, output) -> None:
    """Agent-aware progressive delivery on Argo Rollouts.

    An agent's behaviour depends on four layers: prompt, model, tools and image. AgentRoll versions
    all four together (the composite version) and gates canaries on agent-quality analysis.

    \b
    Examples:
      kubectl agentroll inject -f rollout.yaml        # what the webhook would do, offline
      kubectl agentroll status -A                     # every agent Rollout, stable -> canary
      kubectl agentroll status my-agent -n agents     # one Rollout, layer by layer
    """
    if kubeconfig and ":" in kubeconfig:
        kubeconfig = kubeconfig.split(":")[0]
    ctx.obj = Globals(namespace, all_namespaces, kube_context, kubeconfig, output)


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return BUILTIN
    try:
        return policy_from_document(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as err:
        raise click.ClickException(f"--policy-file {path}: {err}") from None
    except PolicyError as err:
        raise click.ClickException(f"--policy-file {path}: {err}") from None


@main.command()
@click.option("-f", "--filename", required=True, type=click.File("r"),
              help="Manifest file (multi-document YAML), or - for standard input.")
@click.option("--policy-file", type=click.Path(dir_okay=False, path_type=Path),
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


def run() -> None:
    """Entry point: no traceback ever reaches the user."""
    try:
        main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
