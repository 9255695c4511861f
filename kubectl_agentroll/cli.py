"""`kubectl agentroll`: the command line. Commands read, decide with the pure modules, act, print.

The group knows its commands by name: a command's module (in `kubectl_agentroll.commands`) is imported
when that command is asked for, so `status NAME` does not build the other twelve and their options.
"""

from __future__ import annotations

import importlib
import sys

import click

from kubectl_agentroll.commands.common import Globals, kubectl_options

# Imports beyond click are made where needed: `status NAME` is meant to start as fast as kubectl.

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

COMMANDS = {
    "abort": "kubectl_agentroll.commands.lifecycle:abort",
    "deps": "kubectl_agentroll.commands.deps:deps",
    "history": "kubectl_agentroll.commands.history:history",
    "inject": "kubectl_agentroll.commands.inject:inject",
    "pause": "kubectl_agentroll.commands.lifecycle:pause",
    "promote": "kubectl_agentroll.commands.lifecycle:promote",
    "restart": "kubectl_agentroll.commands.lifecycle:restart",
    "retry": "kubectl_agentroll.commands.lifecycle:retry",
    "set": "kubectl_agentroll.commands.setlayer:set_layer",
    "status": "kubectl_agentroll.commands.status:status",
    "undo": "kubectl_agentroll.commands.history:undo",
    "version-diff": "kubectl_agentroll.commands.history:version_diff",
    "wait": "kubectl_agentroll.commands.wait:wait",
}


class LazyGroup(click.Group):
    """A group whose commands are "module:attribute" names, imported when the command is asked for
    (click's "Lazily Loading Subcommands"). Help and completion of command names import them all."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module, attr = self.lazy_commands[cmd_name].split(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """click's "Did you mean" (NoSuchCommand, click 8.4) draws from the commands already built,
        here none: it draws from all the names instead."""
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as err:
            raise click.NoSuchCommand(err.command_name, possibilities=self.list_commands(ctx),
                                      ctx=ctx) from None


EPILOG = """\b
Shell completion (bash; zsh and fish alike with zsh_source / fish_source), Rollout names included:
  eval "$(_KUBECTL_AGENTROLL_COMPLETE=bash_source kubectl-agentroll)"
"""


@kubectl_options
@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings=CONTEXT_SETTINGS, epilog=EPILOG)
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
