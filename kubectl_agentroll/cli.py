"""`kubectl agentroll`: the command line. Commands read, decide with the pure modules, act, print.

Every cluster command goes through `Session` over a `transport.Transport`: the HTTPS one in real use,
the in-memory fake in the unit tests (passed as `obj=Globals(api=fake)`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import click

# Imports beyond click are made where needed: `status NAME` is meant to start as fast as kubectl.

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_ERROR = 1


@dataclass
class Globals:
    """What the group and command options set, for the command to act on."""

    namespace: str | None = None
    all_namespaces: bool = False
    connection: dict = field(default_factory=dict)  # kubeconfig.Flags fields given on the command line
    output: str = "table"
    no_color: bool = False
    api: object = field(default=None, repr=False)  # a Transport given by a test; else HTTPS

    def flags(self):
        from kubectl_agentroll.kubeconfig import Flags, parse_duration

        given = dict(self.connection)
        try:
            if given.get("request_timeout") is not None:
                given["request_timeout"] = parse_duration(given["request_timeout"])
        except ValueError as err:
            _fail(str(err))
        return Flags(**given)

    def style(self):
        from kubectl_agentroll.render import Style

        return Style(colour=not self.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty())


def _set(attr: str):
    def callback(ctx: click.Context, _param, value):
        if value not in (None, False, ()):
            g = ctx.ensure_object(Globals)
            if hasattr(g, attr):
                setattr(g, attr, value)
            else:
                g.connection[attr] = tuple(value) if isinstance(value, (list, tuple)) else value
    return callback


def _complete_rollouts(ctx: click.Context, _param, incomplete: str) -> list:
    """Rollout names for shell completion, from the namespace the command line names so far."""
    from kubectl_agentroll.kube import KubeError
    from kubectl_agentroll.transport import ROLLOUTS, path

    g = ctx.find_object(Globals) or Globals()
    try:
        s = _session(g, quiet=True)
        body = s.api.request("GET", path(ROLLOUTS, s.namespace), what="rollouts")
        s.close()
    except (KubeError, SystemExit, OSError):
        return []
    names = [str((r.get("metadata") or {}).get("name", "")) for r in body.get("items") or []]
    return [n for n in sorted(names) if n.startswith(incomplete)]


# kubectl's connection flags (`kubectl options`), declared once: on the group and again after every
# command. The names after the flags are the fields of kubeconfig.Flags (or of Globals).
_FLAGS = [
    (("-n", "--namespace"), "namespace", {"help": "Namespace (default: the kubeconfig context's)."}),
    (("-A", "--all-namespaces"), "all_namespaces", {"is_flag": True, "help": "Across all namespaces."}),
    (("--kubeconfig",), "kubeconfig", {"help": "Kubeconfig file (default: $KUBECONFIG, ~/.kube/config)."}),
    (("--context",), "context", {"help": "Kubeconfig context to use."}),
    (("--cluster",), "cluster", {"help": "Kubeconfig cluster to use (instead of the context's)."}),
    (("--user",), "user", {"help": "Kubeconfig user to use (instead of the context's)."}),
    (("-s", "--server"), "server", {"help": "The API server's address and port (instead of the cluster's)."}),
    (("--tls-server-name",), "tls_server_name",
     {"help": "Server name to check the API server's certificate against (default: its host)."}),
    (("--certificate-authority",), "certificate_authority",
     {"help": "CA certificate file for the API server."}),
    (("--insecure-skip-tls-verify",), "insecure_skip_tls_verify",
     {"is_flag": True, "help": "Do not verify the API server's certificate (insecure)."}),
    (("--client-certificate",), "client_certificate", {"help": "Client certificate file for TLS."}),
    (("--client-key",), "client_key", {"help": "Client key file for TLS."}),
    (("--token",), "token", {"help": "Bearer token for the API server."}),
    (("--username",), "username", {"help": "Username for basic authentication."}),
    (("--password",), "password", {"help": "Password for basic authentication."}),
    (("--as",), "impersonate", {"help": "User to impersonate."}),
    (("--as-group",), "impersonate_groups",
     {"multiple": True, "help": "Group to impersonate (repeatable; needs --as)."}),
    (("--as-uid",), "impersonate_uid", {"help": "UID to impersonate (needs --as)."}),
    (("--request-timeout",), "request_timeout",
     {"help": "Per request: 0 (none), seconds, or 30s/1m/1h (default 30s)."}),
    (("-o", "--output"), "output",
     {"type": click.Choice(["table", "json", "yaml"]), "help": "Output format."}),
    (("--no-color",), "no_color",
     {"is_flag": True, "help": "No colour (also: NO_COLOR set, or not a terminal)."}),
]


_OPTIONS: list[click.Option] = []


def kubectl_options(command: click.Command) -> click.Command:
    """The connection and output flags, accepted before or after the command (`status -A`). Goes
    above `@main.command()`. The options are made once and shared by every command (they keep no
    state of a run): made per command (13 x 21 = 273) they cost 2-3 ms of every start."""
    if not _OPTIONS:
        _OPTIONS.extend(click.Option(decls, callback=_set(attr), expose_value=False,
                                     **({"default": False} if kwargs.get("is_flag") else {}), **kwargs)
                        for decls, attr, kwargs in _FLAGS)
    command.params.extend(_OPTIONS)
    return command


def rollout_argument(required: bool = True):
    return click.argument("rollout", required=required, shell_complete=_complete_rollouts)


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


# --- cluster commands ----------------------------------------------------------------------------


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _session(g: Globals, quiet: bool = False):
    """The command's Session; a KubeError while connecting becomes one line and exit 1."""
    from kubectl_agentroll.kube import KubeError

    if g.api is not None:
        from kubectl_agentroll.session import Session

        return Session(g.api, g.namespace or "default")
    from kubectl_agentroll.rest import connect

    try:
        api, target = connect(g.flags())
    except KubeError as err:
        if quiet:
            raise
        _fail(str(err))
    api.warm_up()  # the TLS handshake goes on while the modules below load
    from kubectl_agentroll.session import Session

    return Session(api, g.namespace or target.namespace)


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


@kubectl_options
@main.command()
@rollout_argument(required=False)
@click.option("-w", "--watch", is_flag=True,
              help="Keep watching the Rollout, its ReplicaSets, pods and AnalysisRuns; redraw in place.")
@click.option("--until-done", is_flag=True,
              help="With -w: exit when the rollout is Healthy (0) or Degraded (2).")
@click.pass_obj
@_kube_errors
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
        _fail("a Rollout name cannot be combined with -A/--all-namespaces")
    if until_done and not (watch and rollout):
        _fail("--until-done needs -w and a Rollout name")
    s = _session(g)
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


@kubectl_options
@main.command()
@rollout_argument()
@click.option("--for", "condition", type=click.Choice(["healthy", "completed", "paused"]), default="healthy",
              show_default=True, help="What to wait for (see above).")
@click.option("--timeout", default="10m", show_default=True,
              help="Give up after this long: 30s, 10m, 1h (0: never).")
@click.pass_obj
@_kube_errors
def wait(g: Globals, rollout, condition, timeout) -> None:
    """Block until the Rollout gets there; the exit code says how it ended (for CI).

    \b
    --for healthy    fully promoted and Healthy; stops early at a pause that needs a person
    --for completed  Healthy or Degraded, waiting through any pause
    --for paused     Paused (at any pause), or Healthy having finished without pausing

    \b
    Exit codes:
      0  reached
      1  error (the Rollout does not exist, the API server cannot be reached, bad flags)
      2  Degraded: aborted, failed analysis, progress deadline exceeded
      3  timeout
      4  paused and waiting for a person (with --for healthy)
    On 2 and 4 the reason is printed, with the measured values of the analysis that decided.

    \b
    Examples:
      kubectl agentroll wait my-agent --for healthy --timeout 15m && ./smoke-test
      kubectl agentroll wait my-agent --for paused    # the canary reached its first gate
    """
    from kubectl_agentroll import waiting
    from kubectl_agentroll.kubeconfig import parse_duration
    from kubectl_agentroll.transport import ROLLOUTS
    from kubectl_agentroll.watch import Feed, Mirror, follow

    try:
        seconds = parse_duration(timeout, "--timeout")
    except ValueError as err:
        _fail(str(err))
    s = _session(g)
    try:
        s.rollout(rollout)  # a missing Rollout is an error now, not a timeout later
        mirror = Mirror(s.api, [Feed("rollout", ROLLOUTS, s.namespace, name=rollout)])
        found = {}

        def done():
            current = mirror.items("rollout")
            if not current:
                found["verdict"] = waiting.Verdict(EXIT_ERROR, f"{s.what(rollout)} was deleted")
                return True
            found["verdict"] = waiting.verdict(current[0], condition)
            found["rollout"] = current[0]
            return found["verdict"] is not None

        if follow(mirror, lambda: None, done, timeout=seconds or None) is None:
            _fail(f"{s.what(rollout)}: timed out after {timeout} waiting for {condition} "
                  f"(now: {_phase_line(found.get('rollout'))})", waiting.TIMEOUT)
        verdict = found["verdict"]
        if verdict.code == waiting.REACHED:
            click.echo(f"rollout '{rollout}' {verdict.reason}")
            return
        lines = _measured(s, found["rollout"]) if "rollout" in found else []
        click.echo(f"error: rollout '{rollout}': {verdict.reason}", err=True)
        for line in lines:
            click.echo(f"  {line}", err=True)
        sys.exit(verdict.code)
    finally:
        s.close()


def _phase_line(rollout) -> str:
    from kubectl_agentroll.status import rollout_phase

    if not rollout:
        return "unknown"
    phase, message = rollout_phase(rollout)
    return phase + (f": {message}" if message else "")


def _measured(s, rollout) -> list[str]:
    """What the current revision's analysis measured, where it did not pass."""
    from kubectl_agentroll.revisions import history

    current = (rollout.get("status") or {}).get("currentPodHash")
    try:
        runs = s.analysis_runs(rollout, current)
        replicasets = s.replicasets(rollout)
    except Exception:  # noqa: BLE001 - the values only enrich the message
        return []
    revision = next((r for r in history(rollout, replicasets, runs) if r.pod_template_hash == current), None)
    if revision is None or revision.analysis == "Successful":
        return []
    return revision.decisive


def _act(s, name: str, decide) -> tuple:
    """Read the Rollout, decide the patch, send it guarded by the resourceVersion read; on 409
    Conflict (it changed in between) read and decide again."""
    from kubectl_agentroll.actions import send, with_conflict_retry
    from kubectl_agentroll.status import meta

    def attempt():
        rollout = s.rollout(name)
        patch, extra = decide(s, rollout)
        result = send(patch, lambda body, sub: s.patch(name, body, sub), meta(rollout).get("resourceVersion"))
        return rollout, result, extra

    return with_conflict_retry(attempt)


def _each(g: Globals, rollout: str | None, selector: str | None, act) -> None:
    """One Rollout, or each Rollout the selector matches (reported one by one; exit 1 if any failed)."""
    from kubectl_agentroll.actions import Refused
    from kubectl_agentroll.kube import KubeError
    from kubectl_agentroll.session import Session
    from kubectl_agentroll.transport import ROLLOUTS

    if bool(rollout) == bool(selector):
        _fail("give a Rollout name or -l/--selector" + (", not both" if rollout else ""))
    s = _session(g)
    try:
        if rollout:
            try:
                for line in act(s, rollout):
                    click.echo(line)
            except Refused as err:
                _fail(str(err))
            return
        namespace = None if g.all_namespaces else s.namespace
        targets = s.list(ROLLOUTS, f"rollouts matching {selector!r}", namespace, selector)
        if not targets:
            _fail(f"no Rollouts match -l {selector!r} in "
                  + ("any namespace" if namespace is None else f"namespace {namespace!r}"))
        failed = 0
        for obj in sorted(targets, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
            one = Session(s.api, obj["metadata"].get("namespace") or s.namespace)
            try:
                for line in act(one, obj["metadata"]["name"]):
                    click.echo(line)
            except (Refused, KubeError) as err:
                failed += 1
                click.echo(f"error: {err}", err=True)
        if failed:
            _fail(f"{failed} of {len(targets)} Rollouts failed")
    finally:
        s.close()


_SELECTOR = click.option("-l", "--selector", help="Every Rollout with these labels (e.g. team=support).")


@kubectl_options
@main.command()
@rollout_argument(required=False)
@_SELECTOR
@click.option("--full", is_flag=True,
              help="Promote to the end: skip the remaining steps, pauses and analysis.")
@click.option("--force", is_flag=True,
              help="Promote even though the current step's analysis failed or was inconclusive.")
@click.pass_obj
@_kube_errors
def promote(g: Globals, rollout, selector, full, force) -> None:
    """Move a paused agent Rollout to its next step (--full: to the end).

    Sends the same patches as `kubectl argo rollouts promote`, guarded by the Rollout's
    resourceVersion so a decision is never applied to a Rollout that changed since it was read.
    Refuses when the current step's AnalysisRun failed, errored or was inconclusive, saying what it
    measured, unless --force. With -l: every matching Rollout, each reported.

    Exit codes: 0 promoted; 1 refused or an error (with -l: any of them).

    \b
    Examples:
      kubectl agentroll promote my-agent              # next step
      kubectl agentroll promote my-agent --full       # skip the remaining steps
      kubectl agentroll promote my-agent --force      # over an inconclusive analysis
      kubectl agentroll promote -l team=support       # every paused support agent
    """
    from kubectl_agentroll.actions import analysis_problem, plan_promote
    from kubectl_agentroll.transport import ANALYSIS_RUNS

    def decide(s, obj):
        runs = []
        if not force and analysis_problem(obj):
            run_name = obj["status"]["canary"]["currentStepAnalysisRunStatus"].get("name")
            try:
                runs = [s.get(ANALYSIS_RUNS, run_name, f"analysisrun {run_name!r}")] if run_name else []
            except Exception:  # noqa: BLE001 - the values only enrich the refusal
                runs = []
        return plan_promote(obj, full=full, force=force, runs=runs), None

    def act(s, name):
        _act(s, name, decide)
        return [f"rollout '{name}' {'fully promoted' if full else 'promoted'}"]

    _each(g, rollout, selector, act)


@kubectl_options
@main.command()
@rollout_argument(required=False)
@_SELECTOR
@click.pass_obj
@_kube_errors
def abort(g: Globals, rollout, selector) -> None:
    """Stop the canary and go back to the stable composite version.

    Sends the same patch as `kubectl argo rollouts abort` (status.abort: true): the controller
    scales the canary down and sends all traffic to stable. Prints the version rolled back to.
    What the canary agent already did (emails, tickets, API calls) is not undone. With -l: every
    matching Rollout, each reported.

    Exit codes: 0 aborted; 1 refused or an error (with -l: any of them).

    \b
    Examples:
      kubectl agentroll abort my-agent
      kubectl agentroll abort -l team=support -A      # stop every support canary, everywhere
      kubectl agentroll retry my-agent                # later: try the canary again
    """
    from kubectl_agentroll.actions import plan_abort

    def act(s, name):
        _, _, lines = _act(s, name, lambda s, obj: plan_abort(obj, s.replicasets(obj)))
        return [f"rollout '{name}' aborted", *lines]

    _each(g, rollout, selector, act)


def _simple(g: Globals, rollout: str, plan, done: str) -> None:
    from kubectl_agentroll.actions import Refused

    s = _session(g)
    try:
        _act(s, rollout, lambda s, obj: (plan(obj), None))
    except Refused as err:
        _fail(str(err))
    finally:
        s.close()
    click.echo(f"rollout '{rollout}' {done}")


@kubectl_options
@main.command()
@rollout_argument()
@click.pass_obj
@_kube_errors
def retry(g: Globals, rollout) -> None:
    """Resume an aborted agent Rollout: the canary starts again from the first step.

    Sends the same patch as `kubectl argo rollouts retry rollout` (status.abort: false).
    Exit codes: 0 retried; 1 not aborted, or an error.

    \b
    Example:
      kubectl agentroll retry my-agent
    """
    from kubectl_agentroll.actions import plan_retry

    _simple(g, rollout, plan_retry, "retried")


@kubectl_options
@main.command()
@rollout_argument()
@click.pass_obj
@_kube_errors
def pause(g: Globals, rollout) -> None:
    """Pause the Rollout where it is (spec.paused: true, as `kubectl argo rollouts pause`).

    `promote` resumes it. Exit codes: 0 paused; 1 already paused, or an error.

    \b
    Example:
      kubectl agentroll pause my-agent
    """
    from kubectl_agentroll.actions import plan_pause

    _simple(g, rollout, plan_pause, "paused")


@kubectl_options
@main.command()
@rollout_argument()
@click.pass_obj
@_kube_errors
def restart(g: Globals, rollout) -> None:
    """Restart the Rollout's pods (spec.restartAt: now, as `kubectl argo rollouts restart`).

    The controller replaces the pods oldest first, within maxUnavailable; the version does not
    change. Exit codes: 0 restart requested; 1 an error.

    \b
    Example:
      kubectl agentroll restart my-agent
    """
    from datetime import datetime, timezone

    from kubectl_agentroll.actions import plan_restart

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _simple(g, rollout, lambda obj: plan_restart(obj, now), "restarts")


@kubectl_options
@main.command()
@rollout_argument(required=False)
@click.pass_obj
@_kube_errors
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
        _fail("a Rollout name cannot be combined with -A/--all-namespaces")
    s = _session(g)
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
        _fail(f"{s.what(rollout)} is not an agent Rollout (or does not exist)")
    nodes = deps_tree(index, namespace, rollout)
    if g.output != "table":
        from kubectl_agentroll import views

        click.echo(views.dump(g, [n.to_dict() for n in nodes]))
    else:
        click.echo(render_deps(nodes, g.style()))


@kubectl_options
@main.command()
@rollout_argument()
@click.pass_obj
@_kube_errors
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

    s = _session(g)
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
@main.command()
@rollout_argument()
@click.option("--to-revision", type=int, help="The revision to go back to (see `history`).")
@click.option("--to-version", help="The composite version to go back to (see `history`).")
@click.option("--force", is_flag=True, help="Even to a revision whose analysis failed or was inconclusive.")
@click.pass_obj
@_kube_errors
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

    s = _session(g)

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
        _fail(str(err))
    finally:
        s.close()
    v = target.version
    layers = ", ".join(f"{layer} {v.raw[layer] if v.raw[layer] != 'unset' else v.layers[layer]}"
                       for layer in ("prompt", "model", "tools", "image"))
    click.echo(f"rollout '{rollout}' rolled back to revision {target.revision}, composite version "
               f"{v.composite} ({layers})")


@kubectl_options
@main.command("set")
@click.argument("layer", type=click.Choice(["prompt", "model", "tools", "image"]))
@rollout_argument()
@click.argument("value")
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none", show_default=True,
              help="server: send it with dryRun, show the resulting composite version, change nothing.")
@click.pass_obj
@_kube_errors
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

    s = _session(g)
    server = dry_run == "server"

    def attempt():
        plan = plan_set(s.rollout(rollout), layer, value)
        result = s.patch(rollout, plan.body, content_type=JSON_PATCH if plan.json_patch else MERGE_PATCH,
                         dry_run=server)
        return plan, result

    try:
        plan, result = with_conflict_retry(attempt)
    except Refused as err:
        _fail(str(err))
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


@kubectl_options
@main.command("version-diff")
@rollout_argument()
@click.option("--revision", type=int, help="The older revision (default: stable, or the one before --to).")
@click.option("--to", "to", type=int, help="The newer revision (default: the canary, or the latest).")
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
    from kubectl_agentroll import views
    from kubectl_agentroll.render import tabulate
    from kubectl_agentroll.status import DiffError
    from kubectl_agentroll.status import version_diff as diff_of

    s = _session(g)
    try:
        obj = s.rollout(rollout)
        replicasets = s.replicasets(obj)
    finally:
        s.close()
    try:
        diff = diff_of(obj, replicasets, revision, to)
    except DiffError as err:
        _fail(str(err))
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
