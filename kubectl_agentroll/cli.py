"""`kubectl agentroll`: the command line. Commands read, decide with the pure modules, act, print.

The commands are in `kubectl_agentroll.commands`, one module per idea; what they share is in its
`common` module.
"""

from __future__ import annotations

import sys

import click

from kubectl_agentroll.commands import deps, history, inject, lifecycle, setlayer, status, wait
from kubectl_agentroll.commands.common import Globals, kubectl_options

# Imports beyond click are made where needed: `status NAME` is meant to start as fast as kubectl.

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EPILOG = """\b
Shell completion (bash; zsh and fish alike with zsh_source / fish_source), Rollout names included:
  eval "$(_KUBECTL_AGENTROLL_COMPLETE=bash_source kubectl-agentroll)"
"""


@kubectl_options
@click.group(context_settings=CONTEXT_SETTINGS, epilog=EPILOG)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Agent-aware progressive delivery on Argo Rollouts.

    An agent's behaviour depends on four layers: prompt, model, tools and image. AgentRoll versions
    all four together (the composite version) and gates canaries on agent-quality analysis.

    \b
    Examples:
      kubectl agentroll inject -f rollout.yaml        # what the webhook would do, offline
      kubectl agentroll status -A                     # every agent Rollout, stable -> canary
      kubectl agentroll status my-agent -w            # one Rollout, live: layers, analysis, pods
      kubectl agentroll wait my-agent --for healthy   # for CI: exit 0 healthy, 2 degraded, 3 timeout
      kubectl agentroll set prompt my-agent support-v8
      kubectl agentroll promote my-agent              # next step, unless the analysis failed
      kubectl agentroll history my-agent              # every revision, its layers and analysis
      kubectl agentroll undo my-agent                 # back to the last revision that passed
      kubectl agentroll deps -n agents                # agents, required tool servers, dependencies
    """
    ctx.ensure_object(Globals)


for command in (inject.inject, status.status, wait.wait, lifecycle.promote, lifecycle.abort,
                lifecycle.retry, lifecycle.pause, lifecycle.restart, deps.deps, history.history, history.undo,
                setlayer.set_layer, history.version_diff):
    main.add_command(command)


def run() -> None:
    """Entry point: no traceback ever reaches the user."""
    try:
        main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        text = " ".join(str(err).split()) or type(err).__name__
        click.echo(f"error: {text}", err=True)
        sys.exit(1)
