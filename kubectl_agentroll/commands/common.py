"""What every command shares: the options' target (`Globals`), kubectl's connection flags, the Rollout
argument and its completion, the Session and the one-line errors.

Every cluster command goes through `Session` over a `transport.Transport`: the HTTPS one in real use,
the in-memory fake in the unit tests (passed as `obj=Globals(api=fake)`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import click

# Imports beyond click are made where needed: `status NAME` is meant to start as fast as kubectl.

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
            fail(str(err))
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
        s = open_session(g, quiet=True)
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


_OPTIONS: dict[str, click.Option] = {}


def _options() -> dict[str, click.Option]:
    """The flags' options by field name, made once and shared by every command (they keep no state
    of a run): made per command (13 x 21 = 273) they cost 2-3 ms of every start."""
    if not _OPTIONS:
        for decls, attr, kwargs in _FLAGS:
            default = {"default": False} if kwargs.get("is_flag") else {}
            _OPTIONS[attr] = click.Option(decls, callback=_set(attr), expose_value=False, **default, **kwargs)
    return _OPTIONS


def kubectl_options(command: click.Command) -> click.Command:
    """The connection and output flags, accepted before or after the command (`status -A`). Goes
    above `@click.command()`."""
    command.params.extend(_options().values())
    return command


def offline_options(command: click.Command) -> click.Command:
    """For a command that reads no cluster: only -n and -o, accepted after the command too."""
    command.params.extend(option for attr, option in _options().items() if attr in ("namespace", "output"))
    return command


def rollout_argument(required: bool = True):
    return click.argument("rollout", required=required, shell_complete=_complete_rollouts)


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def open_session(g: Globals, quiet: bool = False):
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
        fail(str(err))
    api.warm_up()  # the TLS handshake goes on while the modules below load
    from kubectl_agentroll.session import Session

    return Session(api, g.namespace or target.namespace)


def kube_errors(fn):
    """Run a command body; a KubeError is printed as one line with exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kubectl_agentroll.kube import KubeError

        try:
            return fn(*args, **kwargs)
        except KubeError as err:
            fail(str(err))

    return wrapper

