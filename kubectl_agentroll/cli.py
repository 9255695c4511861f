"""`kubectl agentroll`: the command line. Commands fetch, call the pure modules, and print."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import click

# Imports beyond click are made where needed: `status NAME` is meant to start as fast as kubectl.

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
        from kubectl_agentroll.rest import namespace_of

        return namespace_of(self.kubeconfig, self.context)


EPILOG = """\b
Shell completion (bash; zsh and fish alike with zsh_source / fish_source):
  eval "$(_KUBECTL_AGENTROLL_COMPLETE=bash_source kubectl-agentroll)"
"""


@click.group(context_settings=CONTEXT_SETTINGS, epilog=EPILOG)
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
      kubectl agentroll promote my-agent              # next step, unless the analysis failed
      kubectl agentroll abort my-agent                # back to the stable composite version
      kubectl agentroll version-diff my-agent         # which layers changed, raw values
    """
    ctx.obj = Globals(namespace, all_namespaces, kube_context, kubeconfig, output)


def load_policy(path: str | None):
    from kubectl_agentroll.policy import BUILTIN, PolicyError, load_policy_file

    if path is None:
        return BUILTIN
    try:
        return load_policy_file(path)
    except PolicyError as err:
        raise click.ClickException(f"--policy-file {err}") from None


@main.command()
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


# --- cluster commands: fetch, call the pure modules (status, actions), print ------------------------


def _override(attr: str):
    def callback(ctx: click.Context, _param, value):
        if value not in (None, False):
            setattr(ctx.ensure_object(Globals), attr, value)
    return callback


def kubectl_options(fn):
    """The global options again after the command, as kubectl users type them (`status -A`)."""
    options = [
        click.option("-n", "--namespace", callback=_override("namespace"), expose_value=False,
                     help="Namespace (default: the kubeconfig context's)."),
        click.option("-A", "--all-namespaces", is_flag=True, default=False, expose_value=False,
                     callback=_override("all_namespaces"), help="Across all namespaces."),
        click.option("--context", callback=_override("context"), expose_value=False,
                     help="Kubeconfig context to use."),
        click.option("--kubeconfig", callback=_override("kubeconfig"), expose_value=False,
                     help="Kubeconfig file (default: $KUBECONFIG)."),
        click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), expose_value=False,
                     callback=_override("output"), help="Output format."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


class _Session:
    """The transport and namespace of one command; KubeError becomes one line and exit 1."""

    def __init__(self, g: Globals) -> None:
        from kubectl_agentroll.kube import KubeError
        from kubectl_agentroll.rest import connect

        try:
            self.api, target = connect(g.kubeconfig, g.context)
        except KubeError as err:
            _fail(str(err))
        self.namespace = g.namespace or target.namespace
        warm_up = getattr(self.api, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def get(self, kind, name: str, what: str, namespace: str | None = None) -> dict:
        from kubectl_agentroll.rest import path

        return self.api.request("GET", path(kind, namespace or self.namespace, name), what=what)

    def list(self, kind, what: str, namespace: str | None, selector: str | None = None) -> list:
        from kubectl_agentroll.rest import path

        body = self.api.request("GET", path(kind, namespace), what=what,
                                query={"labelSelector": selector})
        return body.get("items") or []

    def patch(self, name: str, body: dict, subresource: str | None) -> dict:
        from kubectl_agentroll.rest import MERGE_PATCH, ROLLOUTS, path

        return self.api.request("PATCH", path(ROLLOUTS, self.namespace, name, subresource),
                                what=_what(name, self.namespace), body=body, content_type=MERGE_PATCH)


def _what(name: str, namespace: str) -> str:
    return f"rollout {name!r} in namespace {namespace!r}"


def _kube_errors(fn):
    """Run a command body; a KubeError is printed as one line with exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kubectl_agentroll.kube import KubeError

        try:
            return fn(*args, **kwargs)
        except KubeError as err:
            _fail(str(err))

    return wrapper


def _rs_selector(rollout: dict) -> str:
    """The Rollout's own selector (its ReplicaSets carry those labels), else every Rollout-made RS."""
    from kubectl_agentroll.status import POD_TEMPLATE_HASH

    match = ((rollout.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(match.items())) or POD_TEMPLATE_HASH


def _fetch_one(s: _Session, name: str):
    from kubectl_agentroll.rest import ANALYSIS_RUNS, REPLICA_SETS, ROLLOUTS
    from kubectl_agentroll.status import POD_TEMPLATE_HASH, rollout_status

    what = _what(name, s.namespace)
    rollout = s.get(ROLLOUTS, name, what)
    replicasets = s.list(REPLICA_SETS, f"replicasets of {what}", s.namespace, _rs_selector(rollout))
    current = (rollout.get("status") or {}).get("currentPodHash")
    runs = s.list(ANALYSIS_RUNS, f"analysisruns of {what}", s.namespace,
                  f"{POD_TEMPLATE_HASH}={current}") if current else []
    return rollout, rollout_status(rollout, replicasets, runs)


def _fetch_all(s: _Session, g: Globals, rollouts: list | None = None) -> list:
    from kubectl_agentroll.rest import REPLICA_SETS, ROLLOUTS
    from kubectl_agentroll.status import POD_TEMPLATE_HASH, rollout_rows

    namespace = None if g.all_namespaces else s.namespace
    where = "all namespaces" if namespace is None else f"namespace {namespace!r}"
    if rollouts is None:
        rollouts = s.list(ROLLOUTS, f"rollouts in {where}", namespace)
    replicasets = s.list(REPLICA_SETS, f"replicasets in {where}", namespace, POD_TEMPLATE_HASH)
    return rollout_rows(rollouts, replicasets)


def tabulate(rows: list, headers: list) -> str:
    """Left-aligned columns two spaces apart, like tabulate's "plain" format (which costs ~25 ms to
    import: too much for a command that should start as fast as kubectl)."""
    table = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in table)
    return "\n".join(line.rstrip() for line in lines)


def _dump(g: Globals, data) -> str:
    if g.output == "json":
        return json.dumps(data, indent=2)
    import yaml

    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def render_status(model) -> str:
    """The one-Rollout view as text."""
    lines = [f"Name:          {model.name}", f"Namespace:     {model.namespace}",
             f"Status:        {model.phase_display}" + (f" - {model.message}" if model.message else "")]
    if model.aborted:
        lines.append("               ABORTED: running the stable version; the canary was scaled down")
    lines.append(f"Strategy:      {model.strategy or '-'}")
    if model.strategy == "Canary":
        lines.append(f"  Step:        {model.step or '-'}")
        lines.append(f"  SetWeight:   {model.set_weight}")
        lines.append(f"  ActualWeight: {model.actual_weight}")
    r = model.replicas
    lines.append(f"Replicas:      desired {r.desired}, current {r.current}, updated {r.updated}, "
                 f"ready {r.ready}, available {r.available}")
    if not model.opted_in:
        lines.append("               (not an agent Rollout: no agentroll.dev/composite-version label)")
    lines.append("")
    new_role = model.canary.role if model.canary else "canary"

    def head(v, role):
        return f"{role} (rev {v.revision}, {v.pod_template_hash})" if v else f"{role} (none)"

    rows = [[row.layer, row.stable or "-", row.canary or "-", "changed" if row.changed else ""]
            for row in model.layers]
    lines.append(tabulate(rows, headers=["LAYER", head(model.stable, "stable"),
                                         head(model.canary, new_role), ""]))
    if model.canary is None:
        lines.append("(no update in flight)")
    if model.analysis_runs:
        lines.append("")
        lines.append("Analysis of the current revision:")
        run_rows, metric_rows = [], []
        for run in model.analysis_runs:
            where = f"step {run.step_index}" if run.step_index is not None else run.kind or "-"
            run_rows.append([run.name, where, run.phase, run.message or ""])
            for m in run.metrics:
                metric_rows.append([run.name, m.name, m.phase, ", ".join(m.values) or "-",
                                    m.success_condition or "-", m.failure_condition or "-",
                                    f"{m.successful}/{m.failed}/{m.inconclusive}/{m.error}"])
        lines.append(tabulate(run_rows, headers=["RUN", "FOR", "PHASE", "MESSAGE"]))
        if metric_rows:
            lines.append("")
            lines.append(tabulate(metric_rows, headers=[
                "RUN", "METRIC", "PHASE", "LAST VALUES", "SUCCESS IF", "FAILURE IF", "OK/FAIL/INC/ERR"]))
    for note in model.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def render_rows(rows, all_namespaces: bool) -> str:
    if not rows:
        return ("No agent Rollouts found (opted in: agentroll.dev/composite-version label "
                "or inject annotation).")
    table = []
    for row in rows:
        version = f"{row.stable} -> {row.canary}" if row.canary else row.stable
        cells = [row.name, f"{row.phase} (aborted)" if row.aborted else row.phase,
                 row.step or "-", row.weight or "-", version]
        table.append(([row.namespace] if all_namespaces else []) + cells)
    headers = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME", "PHASE", "STEP", "WEIGHT", "STABLE -> CANARY"]
    return tabulate(table, headers=headers)


def _emit(g: Globals, text: str, data, watching: bool, first: bool) -> None:
    if g.output != "table":
        if watching and g.output == "json":
            click.echo(json.dumps(data, separators=(",", ":")))
        else:
            click.echo(("---\n" if watching and not first else "") + _dump(g, data))
        return
    if watching and sys.stdout.isatty():
        click.echo("\x1b[H\x1b[2J" + text)
    else:
        click.echo(("\n" if watching and not first else "") + text)


def _watch_events(s: _Session, namespace: str | None, name: str | None, resource_version: str):
    """Rollout watch events from `resource_version` on, re-established when the server ends a watch."""
    from kubectl_agentroll.rest import ROLLOUTS, path

    query = {"watch": "1", "allowWatchBookmarks": "true", "resourceVersion": resource_version}
    if name:
        query["fieldSelector"] = f"metadata.name={name}"
    what = f"watch of rollouts in namespace {namespace!r}" if namespace else "watch of rollouts"
    from kubectl_agentroll.kube import KubeError

    while True:
        try:
            for event in s.api.stream(path(ROLLOUTS, namespace), what=what, query=query):
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:  # our resourceVersion is too old: read afresh
                        yield "RELIST", None
                        return
                    raise KubeError(f"{what}: {obj.get('message', 'error')}", obj.get("code"))
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    query["resourceVersion"] = rv
                if event.get("type") != "BOOKMARK":
                    yield event.get("type"), obj
        except KubeError as err:
            if err.status != 410:
                raise
            yield "RELIST", None
            return


def _status_watch(s: _Session, g: Globals, name: str | None) -> None:
    """Draw, then redraw on every watch event on the Rollout(s); one watch stream stays open."""
    from kubectl_agentroll.rest import ROLLOUTS, path

    namespace = None if (g.all_namespaces and not name) else s.namespace
    shown = {"last": None, "first": True}

    def draw(text: str, data) -> None:
        if text != shown["last"]:
            _emit(g, text, data, True, shown["first"])
            shown["first"], shown["last"] = False, text

    while True:  # each round: a fresh read, then the watch from its resourceVersion
        if name:
            rollout, model = _fetch_one(s, name)
            rv = rollout["metadata"]["resourceVersion"]
            draw(render_status(model), model.to_dict())
        else:
            listing = s.api.request("GET", path(ROLLOUTS, namespace), what="rollouts")
            by_uid = {r["metadata"]["uid"]: r for r in listing.get("items") or []}
            rv = (listing.get("metadata") or {}).get("resourceVersion", "0")
            rows = _fetch_all(s, g, list(by_uid.values()))
            draw(render_rows(rows, g.all_namespaces), [r.to_dict() for r in rows])
        for kind, obj in _watch_events(s, namespace, name, rv):
            if kind == "RELIST":
                break
            if name:
                if kind == "DELETED":
                    click.echo(f"rollout {name!r} was deleted", err=True)
                    return
                _, model = _fetch_one(s, name)  # its ReplicaSets and AnalysisRuns too
                draw(render_status(model), model.to_dict())
                continue
            uid = obj["metadata"]["uid"]
            if kind == "DELETED":
                by_uid.pop(uid, None)
            else:
                by_uid[uid] = obj
            rows = _fetch_all(s, g, list(by_uid.values()))
            draw(render_rows(rows, g.all_namespaces), [r.to_dict() for r in rows])


@main.command()
@click.argument("rollout", required=False)
@click.option("-w", "--watch", is_flag=True,
              help="Keep watching; redraw when the Rollout changes (Ctrl-C stops).")
@kubectl_options
@click.pass_obj
@_kube_errors
def status(g: Globals, rollout, watch) -> None:
    """Show one agent Rollout layer by layer, or list them all.

    With a name: phase and message (as the Argo plugin computes them), step, set and actual
    weight, the stable and canary composite versions layer by layer (from the ReplicaSets'
    labels), replicas, and the current revision's AnalysisRuns with each metric's last measured
    values and its success/failure condition.

    Without a name: one line per agent Rollout in the namespace (-A: all namespaces).

    \b
    Examples:
      kubectl agentroll status my-agent -n agents
      kubectl agentroll status my-agent -w            # redraw on every change
      kubectl agentroll status -A                     # all agent Rollouts, stable -> canary
      kubectl agentroll status my-agent -o json       # the display model as data
    """
    if rollout and g.all_namespaces:
        _fail("a Rollout name cannot be combined with -A/--all-namespaces")
    s = _Session(g)
    try:
        if watch:
            _status_watch(s, g, rollout)
            return
        if rollout:
            _, model = _fetch_one(s, rollout)
            _emit(g, render_status(model), model.to_dict(), False, True)
        else:
            rows = _fetch_all(s, g)
            _emit(g, render_rows(rows, g.all_namespaces), [r.to_dict() for r in rows], False, True)
    except KeyboardInterrupt:
        click.echo("", err=True)
    finally:
        s.api.close()


def _act(g: Globals, name: str, decide) -> tuple:
    """Read the Rollout, decide the patch, send it; again on 409 Conflict."""
    from kubectl_agentroll.actions import Refused, send, with_conflict_retry

    s = _Session(g)

    def attempt():
        from kubectl_agentroll.rest import ROLLOUTS

        rollout = s.get(ROLLOUTS, name, _what(name, s.namespace))
        patch, extra = decide(s, rollout)
        result = send(patch, lambda body, sub: s.patch(name, body, sub))
        return rollout, result, extra

    try:
        return with_conflict_retry(attempt)
    except Refused as err:
        _fail(str(err))
    finally:
        s.api.close()


@main.command()
@click.argument("rollout")
@click.option("--full", is_flag=True,
              help="Promote to the end: skip the remaining steps, pauses and analysis.")
@click.option("--force", is_flag=True,
              help="Promote even though the current step's analysis failed or was inconclusive.")
@kubectl_options
@click.pass_obj
@_kube_errors
def promote(g: Globals, rollout, full, force) -> None:
    """Move a paused agent Rollout to its next step (--full: to the end).

    Sends the same patches as `kubectl argo rollouts promote`. Refuses when the current step's
    AnalysisRun failed, errored or was inconclusive, saying what it measured, unless --force.

    \b
    Examples:
      kubectl agentroll promote my-agent              # next step
      kubectl agentroll promote my-agent --full       # skip the remaining steps
      kubectl agentroll promote my-agent --force      # over an inconclusive analysis
    """
    from kubectl_agentroll.actions import analysis_problem, plan_promote
    from kubectl_agentroll.rest import ANALYSIS_RUNS

    def decide(s, obj):
        runs = []
        if not force and analysis_problem(obj):
            run_name = obj["status"]["canary"]["currentStepAnalysisRunStatus"].get("name")
            try:
                runs = [s.get(ANALYSIS_RUNS, run_name, f"analysisrun {run_name!r}")] if run_name else []
            except Exception:  # noqa: BLE001 - the values only enrich the refusal
                runs = []
        return plan_promote(obj, full=full, force=force, runs=runs), None

    _act(g, rollout, decide)
    click.echo(f"rollout '{rollout}' {'fully promoted' if full else 'promoted'}")


@main.command()
@click.argument("rollout")
@kubectl_options
@click.pass_obj
@_kube_errors
def abort(g: Globals, rollout) -> None:
    """Stop the canary and go back to the stable composite version.

    Sends the same patch as `kubectl argo rollouts abort` (status.abort: true): the controller
    scales the canary down and sends all traffic to stable. Prints the version rolled back to.
    What the canary agent already did (emails, tickets, API calls) is not undone.

    \b
    Example:
      kubectl agentroll abort my-agent
      kubectl agentroll retry my-agent                # later: try the canary again
    """
    from kubectl_agentroll.actions import plan_abort
    from kubectl_agentroll.rest import REPLICA_SETS

    def decide(s, obj):
        replicasets = s.list(REPLICA_SETS, f"replicasets of {_what(rollout, s.namespace)}",
                             s.namespace, _rs_selector(obj))
        return plan_abort(obj, replicasets)

    _, _, lines = _act(g, rollout, decide)
    click.echo(f"rollout '{rollout}' aborted")
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("rollout")
@kubectl_options
@click.pass_obj
@_kube_errors
def retry(g: Globals, rollout) -> None:
    """Resume an aborted agent Rollout: the canary starts again from the first step.

    Sends the same patch as `kubectl argo rollouts retry rollout` (status.abort: false).

    \b
    Example:
      kubectl agentroll retry my-agent
    """
    from kubectl_agentroll.actions import plan_retry

    _act(g, rollout, lambda s, obj: (plan_retry(obj), None))
    click.echo(f"rollout '{rollout}' retried")


@main.command("version-diff")
@click.argument("rollout")
@click.option("--revision", type=int, help="The older revision (default: stable, or the one before --to).")
@click.option("--to", "to", type=int, help="The newer revision (default: the canary, or the latest).")
@kubectl_options
@click.pass_obj
@_kube_errors
def version_diff(g: Globals, rollout, revision, to) -> None:
    """Which layers differ between two revisions, with their raw values and images.

    Default: stable vs canary, or the last two revisions when nothing is in flight. Warns when
    more than one layer changed: a regression could then not be attributed to one layer.

    \b
    Examples:
      kubectl agentroll version-diff my-agent
      kubectl agentroll version-diff my-agent --revision 3 --to 5 -o json
    """
    from kubectl_agentroll.rest import REPLICA_SETS, ROLLOUTS
    from kubectl_agentroll.status import DiffError
    from kubectl_agentroll.status import version_diff as diff_of

    s = _Session(g)
    try:
        what = _what(rollout, s.namespace)
        obj = s.get(ROLLOUTS, rollout, what)
        replicasets = s.list(REPLICA_SETS, f"replicasets of {what}", s.namespace, _rs_selector(obj))
    finally:
        s.api.close()
    try:
        diff = diff_of(obj, replicasets, revision, to)
    except DiffError as err:
        _fail(str(err))
    if g.output != "table":
        click.echo(_dump(g, diff.to_dict()))
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


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


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
