"""What `status` shows and how it stays current: the reads behind a view, the view as text or data,
and the live views of `status -w` (one Rollout with its ReplicaSets, pods and AnalysisRuns; or the
list), redrawn in place on a terminal."""

from __future__ import annotations

import json
import sys

import click


def fetch_one(s, name: str, tree: bool = False):
    """The Rollout, its status model and (when asked) its revision tree: 3 requests, 4 with the tree,
    2 more when it declares tool requirements (the tool servers of its namespace)."""
    rollout = s.rollout(name)
    replicasets = s.replicasets(rollout)
    runs = s.analysis_runs(rollout)
    pods = s.pods(rollout) if tree else []
    return rollout, model_of(rollout, replicasets, runs, pods, tree, tool_servers(s, rollout))


def tool_servers(s, rollout) -> list | None:
    """The tool servers in the Rollout's namespace, only when it declares requirements."""
    from kubectl_agentroll import composite as cv
    from kubectl_agentroll import status as st

    if cv.TOOL_REQUIREMENTS not in st.annotations_of(rollout):
        return None
    from kubectl_agentroll.network import tool_servers_among
    from kubectl_agentroll.session import together
    from kubectl_agentroll.transport import DEPLOYMENTS, ROLLOUTS

    where = f"tool servers in namespace {s.namespace!r}"
    rollouts, deployments = together(lambda: s.list(ROLLOUTS, where, s.namespace, cv.TOOL_SERVER),
                                     lambda: s.list(DEPLOYMENTS, where, s.namespace, cv.TOOL_SERVER))
    return tool_servers_among("Rollout", rollouts) + tool_servers_among("Deployment", deployments)


def model_of(rollout, replicasets, runs, pods, tree: bool, servers: list | None = None):
    from datetime import datetime, timezone

    from kubectl_agentroll.status import rollout_status
    from kubectl_agentroll.tree import revision_tree

    model = rollout_status(rollout, replicasets, runs)
    if servers is not None:
        from kubectl_agentroll.network import requirement_rows

        model.requirements = requirement_rows(rollout, servers)
    nodes = revision_tree(rollout, replicasets, pods, runs, datetime.now(timezone.utc)) if tree else None
    return model, nodes


SELECTOR_HASHES = 200  # more hashes to read than this: every Rollout-made ReplicaSet, in one list


def fetch_all(s, g):
    """The list view's rows: the Rollouts, then only the ReplicaSets that are not `settled`'s (none
    when nothing is rolling out: a cluster of 1,000 agents reads one list, not two)."""
    from kubectl_agentroll.status import POD_TEMPLATE_HASH, replicasets_to_read, rollout_rows
    from kubectl_agentroll.transport import REPLICA_SETS, ROLLOUTS

    namespace = None if g.all_namespaces else s.namespace
    where = "all namespaces" if namespace is None else f"namespace {namespace!r}"
    rollouts = s.list(ROLLOUTS, f"rollouts in {where}", namespace)
    hashes = replicasets_to_read(rollouts)
    replicasets = []
    if hashes:
        selector = (f"{POD_TEMPLATE_HASH} in ({','.join(sorted(hashes))})" if len(hashes) <= SELECTOR_HASHES
                    else POD_TEMPLATE_HASH)
        replicasets = s.list(REPLICA_SETS, f"replicasets in {where}", namespace, selector)
    return rollout_rows(rollouts, replicasets)


def dump(g, data) -> str:
    if g.output == "json":
        return json.dumps(data, indent=2)
    import yaml

    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def one_view(g, model, nodes) -> tuple[str | None, object]:
    """The view in the form asked for: text for a table (no data), data for -o json|yaml (no text).
    Only one is made: turning the model into data copies it deeply, and a watch does it per redraw."""
    if g.output == "table":
        from kubectl_agentroll.render import render_status

        return render_status(model, nodes, g.style()), None
    from kubectl_agentroll.tree import to_dicts

    data = model.to_dict()
    if nodes is not None:
        data["revisions"] = to_dicts(nodes)
    return None, data


def emit(g, text: str | None, data, watching: bool, first: bool) -> None:
    from kubectl_agentroll.render import frame

    if g.output != "table":
        if watching and g.output == "json":
            click.echo(json.dumps(data, separators=(",", ":")))
        else:
            click.echo(("---\n" if watching and not first else "") + dump(g, data))
        return
    if watching and sys.stdout.isatty():
        click.echo(("\x1b[2J" if first else "") + frame(text), nl=False)
    else:
        click.echo(("\n" if watching and not first else "") + text)


def printer(g):
    """Emit a view unless it is the same as the last one (its text, or its data for -o json|yaml)."""
    shown = {"last": None, "first": True}

    def draw(text: str | None, data) -> None:
        key = text if g.output == "table" else json.dumps(data, sort_keys=True, default=str)
        if key != shown["last"]:
            emit(g, text, data, True, shown["first"])
            shown["first"], shown["last"] = False, key

    return draw


def watch_one(g, s, name: str, until_done: bool) -> int:
    """Redraw one Rollout from live copies of it, its ReplicaSets, pods and AnalysisRuns."""
    from kubectl_agentroll import waiting
    from kubectl_agentroll.session import rs_selector
    from kubectl_agentroll.transport import ANALYSIS_RUNS, PODS, REPLICA_SETS, ROLLOUTS
    from kubectl_agentroll.watch import Feed, Mirror, follow

    rollout = s.rollout(name)
    selector = rs_selector(rollout)
    mirror = Mirror(s.api, [Feed("rollout", ROLLOUTS, s.namespace, name=name),
                            Feed("rs", REPLICA_SETS, s.namespace, selector),
                            Feed("pods", PODS, s.namespace, selector),
                            Feed("runs", ANALYSIS_RUNS, s.namespace)])
    draw_text = printer(g)
    outcome = {}

    def draw() -> None:
        current = mirror.items("rollout")
        if not current:
            return
        model, nodes = model_of(current[0], mirror.items("rs"), mirror.items("runs"), mirror.items("pods"),
                              tree=True)
        draw_text(*one_view(g, model, nodes))

    def done():
        current = mirror.items("rollout")
        if not current:
            outcome["deleted"] = True
            return True
        if until_done:
            verdict = waiting.verdict(current[0], "completed")
            if verdict is not None:
                outcome["verdict"] = verdict
                return True
        return False

    follow(mirror, draw, done)
    if outcome.get("deleted"):
        click.echo(f"{s.what(name)} was deleted", err=True)
        return waiting.ERROR
    verdict = outcome.get("verdict")
    return verdict.code if verdict is not None else 0


def watch_all(g, s) -> None:
    from kubectl_agentroll.render import render_rows
    from kubectl_agentroll.status import POD_TEMPLATE_HASH, rollout_rows
    from kubectl_agentroll.transport import REPLICA_SETS, ROLLOUTS
    from kubectl_agentroll.watch import Feed, Mirror, follow

    namespace = None if g.all_namespaces else s.namespace
    mirror = Mirror(s.api, [Feed("rollouts", ROLLOUTS, namespace),
                            Feed("rs", REPLICA_SETS, namespace, POD_TEMPLATE_HASH)])
    draw_text = printer(g)

    def draw() -> None:
        rows = rollout_rows(mirror.items("rollouts"), mirror.items("rs"))
        if g.output == "table":
            draw_text(render_rows(rows, g.all_namespaces, g.style()), None)
        else:
            draw_text(None, [r.to_dict() for r in rows])

    follow(mirror, draw)
