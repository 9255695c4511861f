"""`deps`: the agent network, agents with the tools they require and the agents they depend on."""

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
@rollout_argument(required=False)
@click.pass_obj
@kube_errors
def deps(g: Globals, rollout) -> None:
    """Show the agent network: each agent with the tools it requires and the agents it depends on.

    An agent line gives its composite version and phase (mid-rollout when a canary runs); a tool
    line, the agent's requirement (agentroll.dev/tool-requirements), the tool-server versions that
    run now in the agent's namespace and whether one meets it; a dependency
    (agentroll.dev/depends-on) is expanded in turn. Tool servers no agent requires come last.
    With a name: that agent's network only. Exit codes: 0; 1 an error.

    \b
    Examples:
      kubectl agentroll deps -n agents
      kubectl agentroll deps support-agent -n agents
      kubectl agentroll deps -A -o json
    """
    from kubectl_agentroll import composite as cv
    from kubectl_agentroll.depsview import deps_tree
    from kubectl_agentroll.network import NetworkIndex
    from kubectl_agentroll.render import render_deps
    from kubectl_agentroll.transport import DEPLOYMENTS, ROLLOUTS

    if rollout and g.all_namespaces:
        fail("a Rollout name cannot be combined with -A/--all-namespaces")
    s = open_session(g)
    namespace = None if g.all_namespaces else s.namespace
    where = "all namespaces" if namespace is None else f"namespace {namespace!r}"
    from kubectl_agentroll.session import together

    try:
        index = NetworkIndex.of(*together(
            lambda: s.list(ROLLOUTS, f"rollouts in {where}", namespace),
            lambda: s.list(DEPLOYMENTS, f"tool-server deployments in {where}", namespace, cv.TOOL_SERVER)))
    finally:
        s.close()
    if rollout and index.agent(s.namespace, rollout) is None:
        fail(f"{s.what(rollout)} is not an agent Rollout (or does not exist)")
    nodes = deps_tree(index, namespace, rollout)
    if g.output != "table":
        from kubectl_agentroll import views

        click.echo(views.dump(g, [n.to_dict() for n in nodes]))
    else:
        click.echo(render_deps(nodes, g.style()))
