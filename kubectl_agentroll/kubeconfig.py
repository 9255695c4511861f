"""Where and how to reach the API server: kubeconfig files (or the pod's service account) in, a
`Target` out, with kubectl's connection flags applied on top.

Reads the kubeconfig itself (server, CA, client certificate, token, basic auth,
insecure-skip-tls-verify, tls-server-name, impersonation (as, as-groups, as-uid), context namespace;
several files in KUBECONFIG merge like kubectl's). Users this module does not resolve itself (exec
credential plugins, auth-provider) are resolved by the `kubernetes` package (slower to start), whose
result the transport then uses; proxy-url is not supported. Errors are `kube.KubeError`, one line.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kubectl_agentroll.kube import KubeError

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class Target:
    """Where and how to reach the API server, as the kubeconfig (or the pod) says."""

    server: str
    namespace: str = "default"
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    cert_file: str | None = None
    cert_data: bytes | None = None
    key_file: str | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    impersonate: str | None = None
    impersonate_groups: tuple[str, ...] = ()
    impersonate_uid: str | None = None
    timeout: float | None = None  # seconds per request; 0 waits for ever; None: the transport's default
    needs_client_library: str | None = None  # why the plain transport cannot serve this user


@dataclass(frozen=True)
class Flags:
    """kubectl's connection flags, as given on the command line (None: not given)."""

    kubeconfig: str | None = None
    context: str | None = None
    cluster: str | None = None
    user: str | None = None
    server: str | None = None
    tls_server_name: str | None = None
    certificate_authority: str | None = None
    insecure_skip_tls_verify: bool = False
    client_certificate: str | None = None
    client_key: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None
    impersonate: str | None = None
    impersonate_groups: tuple[str, ...] = field(default_factory=tuple)
    impersonate_uid: str | None = None
    request_timeout: float | None = None


def parse_duration(text: str, flag: str = "--request-timeout") -> float:
    """A kubectl duration in seconds: a number, or with a unit: 500ms, 30s, 1m, 1h ("0": none)."""
    text = text.strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)]:
            number, scale = text[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = text, 1
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected e.g. 0, 30, 30s, 1m or 1h") from None
    if seconds < 0:
        raise ValueError(f"{flag} {text!r}: must not be negative")
    return seconds


def _load_yaml(path: str) -> Mapping:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    data = parse_simple_yaml(text)
    if data is None:
        import yaml

        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    return data if isinstance(data, Mapping) else {}


# --- kubeconfig YAML without PyYAML --------------------------------------------------------------
# Importing PyYAML costs ~13 ms, a fifth of `kubectl get`. Kubeconfigs as kubectl and client-go
# write them use a small block-style subset of YAML; `parse_simple_yaml` reads exactly that subset
# and returns None for anything else (flow collections other than {} and [], anchors, tags,
# multi-line or escaped scalars, comments after values, numbers other than plain decimals, YAML 1.1
# booleans such as `yes`, dates...), so that PyYAML reads those files instead. Where it answers, it
# answers what yaml.safe_load would (tests/unit/test_kubeconfig.py checks that, also by property).


class _NotSimple(Exception):
    pass


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./")
_PLAIN_FIRST_BAD = frozenset("[]{}&*!|>'\"%@`#,?:-~")
_NULLS = {"null", "Null", "NULL", "~", ""}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_YAML11_WORDS = {"yes", "no", "on", "off"}


def _scalar(text: str):
    if text in ("{}", "[]"):
        return {} if text == "{}" else []
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        inner = text[1:-1]
        if text[0] in inner or "\\" in inner or any(ord(c) < 32 for c in inner):
            raise _NotSimple
        return inner
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text[0] in _PLAIN_FIRST_BAD or ": " in text or " #" in text or text.endswith(":") or "\t" in text:
        raise _NotSimple
    if text.lower() in _YAML11_WORDS:
        raise _NotSimple
    if text.isdigit():
        if len(text) > 1 and text[0] == "0":
            raise _NotSimple  # octal in YAML 1.1
        return int(text)
    if text[0] in "+.0123456789" or text.lower().lstrip("+-.") in ("inf", "nan"):
        raise _NotSimple  # floats, dates, sexagesimals, signed numbers...
    return text


def parse_simple_yaml(text: str):
    """The kubeconfig subset of YAML (see above) as Python data, or None when outside it."""
    lines = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or (stripped.startswith("#") and raw.lstrip(" ") == stripped):
            continue
        content = raw.lstrip(" ")
        if content != content.lstrip() or raw != raw.rstrip() and raw.rstrip().endswith(("'", '"')):
            return None  # tabs in the indentation; trailing blanks after a quoted scalar
        lines.append([len(raw) - len(content), content.rstrip()])
    if not lines or lines[0][0] != 0 or lines[0][1].startswith(("---", "...", "%")):
        return None
    try:
        value, end = _block(lines, 0, 0)
    except (_NotSimple, IndexError, ValueError):
        return None
    return value if end == len(lines) and isinstance(value, dict) else None


def _block(lines: list, i: int, indent: int):
    text = lines[i][1]
    if text == "-" or text.startswith("- "):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _nested(lines: list, i: int, indent: int, allow_indentless: bool):
    """The value on the lines after a `key:` or `-` with nothing after it."""
    if i < len(lines) and lines[i][0] > indent:
        return _block(lines, i, lines[i][0])
    if allow_indentless and i < len(lines) and lines[i][0] == indent and (
            lines[i][1] == "-" or lines[i][1].startswith("- ")):
        return _sequence(lines, i, indent)
    return None, i


def _mapping(lines: list, i: int, indent: int):
    result: dict = {}
    while i < len(lines) and lines[i][0] >= indent:
        line_indent, text = lines[i]
        if line_indent > indent:
            raise _NotSimple  # a continuation line, or inconsistent indentation
        if text == "-" or text.startswith("- "):
            break  # an indentless sequence ends here; its parent mapping goes on
        key, colon, rest = text.partition(":")
        if not colon or not key or not set(key) <= _KEY_CHARS or key in result or (rest and rest[0] != " "):
            raise _NotSimple
        if key[0] in "-.+0123456789" or key in _NULLS or key in _BOOLS or key.lower() in _YAML11_WORDS:
            raise _NotSimple  # keys YAML would read as numbers, booleans or null
        rest = rest.strip()
        if rest:
            result[key] = _scalar(rest)
            i += 1
        else:
            result[key], i = _nested(lines, i + 1, indent, allow_indentless=True)
    return result, i


def _sequence(lines: list, i: int, indent: int):
    items: list = []
    while i < len(lines) and lines[i][0] >= indent:
        line_indent, text = lines[i]
        if line_indent > indent:
            raise _NotSimple
        if not (text == "-" or text.startswith("- ")):
            break
        rest = text[1:].lstrip(" ")
        if not rest:
            value, i = _nested(lines, i + 1, indent, allow_indentless=False)
        elif ":" in rest and (rest.endswith(":") or ": " in rest) and rest[0] not in "'\"":
            column = indent + len(text) - len(rest)
            lines[i] = [column, rest]  # "- key: v" opens a mapping at the column of `key`
            value, i = _mapping(lines, i, column)
        else:
            value = _scalar(rest)
            i += 1
        items.append(value)
    return items, i


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    raw = kubeconfig or os.environ.get("KUBECONFIG") or ""
    paths = [os.path.expanduser(p) for p in raw.split(os.pathsep) if p]
    if not paths:
        default = os.path.expanduser("~/.kube/config")
        paths = [default] if os.path.exists(default) else []
    return paths


def merged_kubeconfig(paths: list[str]) -> dict:
    """Several kubeconfig files as one: the first file to set a name (or current-context) wins."""
    merged: dict = {"clusters": {}, "contexts": {}, "users": {}, "current-context": None}
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            doc = _load_yaml(path)
        except (OSError, ValueError) as err:
            raise KubeError(f"kubeconfig {path}: {' '.join(str(err).split())}") from None
        base = os.path.dirname(os.path.abspath(path))
        for kind, key in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
            for item in doc.get(kind) or []:
                if isinstance(item, Mapping) and item.get("name") not in merged[kind]:
                    merged[kind][item.get("name")] = (dict(item.get(key) or {}), base)
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def _file(value: str | None, base: str) -> str | None:
    if not value:
        return None
    return value if os.path.isabs(value) else os.path.join(base, value)


def _data(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def load_target(flags: Flags = Flags()) -> Target:  # noqa: B008 - a frozen dataclass
    """Resolve --kubeconfig/KUBECONFIG/~/.kube/config, --context, --cluster and --user (in a pod
    without a kubeconfig: the service account), then apply the other connection flags as kubectl
    does (client-go's clientcmd overrides)."""
    target = _from_files(flags)
    if target.needs_client_library == "proxy-url":
        raise KubeError("kubeconfig: proxy-url is not supported by kubectl-agentroll; "
                        "reach the API server directly or through `kubectl proxy`")
    if flags.token:
        target = replace(target, token=flags.token, token_file=None, username=None, password=None,
                         cert_file=None, cert_data=None, key_file=None, key_data=None)
    elif target.needs_client_library:
        target = resolve_with_client_library(flags, target)
    return _with_overrides(replace(target, needs_client_library=None), flags)


def _with_overrides(target: Target, flags: Flags) -> Target:
    """The command line over the kubeconfig. As in kubectl: --server drops the kubeconfig's
    tls-server-name (unless --tls-server-name is given too); --certificate-authority or
    --insecure-skip-tls-verify replaces both the CA and the skip setting of the kubeconfig."""
    o: dict = {}
    if flags.server:
        o.update(server=flags.server.rstrip("/"))
    if flags.server or flags.tls_server_name:
        o.update(tls_server_name=flags.tls_server_name)
    if flags.certificate_authority or flags.insecure_skip_tls_verify:
        o.update(ca_file=flags.certificate_authority, ca_data=None, insecure=flags.insecure_skip_tls_verify)
    if flags.client_certificate:
        o.update(cert_file=flags.client_certificate, cert_data=None)
    if flags.client_key:
        o.update(key_file=flags.client_key, key_data=None)
    if flags.username is not None:
        o.update(username=flags.username)
    if flags.password is not None:
        o.update(password=flags.password)
    if flags.impersonate:
        o.update(impersonate=flags.impersonate)
    if flags.impersonate_groups:
        o.update(impersonate_groups=tuple(flags.impersonate_groups))
    if flags.impersonate_uid:
        o.update(impersonate_uid=flags.impersonate_uid)
    t = replace(target, timeout=flags.request_timeout, **o)
    for attr, flag, key in (("ca_file", flags.certificate_authority, "certificate-authority"),
                            ("cert_file", flags.client_certificate, "client-certificate"),
                            ("key_file", flags.client_key, "client-key")):
        value = getattr(t, attr)
        if value and not os.path.isfile(value):
            raise KubeError(f"{f'--{key}' if flag else f'kubeconfig: {key}'} {value}: no such file")
    has_cert, has_key = bool(t.cert_file or t.cert_data), bool(t.key_file or t.key_data)
    if has_cert and not has_key:
        raise KubeError("a client certificate without its key: give --client-key (or client-key in the user)")
    if has_key and not has_cert:
        raise KubeError("a client key without its certificate: give --client-certificate "
                        "(or client-certificate in the user)")
    if (t.impersonate_groups or t.impersonate_uid) and not t.impersonate:
        raise KubeError("--as-group/--as-uid: impersonating groups or a UID needs a user to impersonate "
                        "(--as, or as in the user)")
    return t


def _from_files(flags: Flags) -> Target:
    paths = kubeconfig_paths(flags.kubeconfig)
    if not paths:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if host and port and os.path.exists(os.path.join(SA_DIR, "token")):
            try:
                with open(os.path.join(SA_DIR, "namespace"), encoding="utf-8") as fh:
                    namespace = fh.read().strip() or "default"
            except OSError:
                namespace = "default"
            host = f"[{host}]" if ":" in host else host
            return Target(server=f"https://{host}:{port}", namespace=namespace,
                          ca_file=os.path.join(SA_DIR, "ca.crt"),
                          token_file=os.path.join(SA_DIR, "token"))
        if flags.server:
            return Target(server=flags.server)
        raise KubeError("kubeconfig: no kubeconfig found (set --kubeconfig or KUBECONFIG)")
    config = merged_kubeconfig(paths)
    context = flags.context
    name = context or config["current-context"]
    if not name and not (flags.cluster and flags.user) and not flags.server:
        raise KubeError("kubeconfig: no current-context set (use --context)")
    if name and name not in config["contexts"]:
        raise KubeError(f"--context {name}: no such context in the kubeconfig" if context
                        else f"kubeconfig: current-context {name!r} is not defined")
    ctx, _ = config["contexts"][name] if name else ({}, "")
    cluster_name = flags.cluster or ctx.get("cluster")
    cluster, cluster_base = config["clusters"].get(cluster_name, (None, ""))
    if flags.cluster and cluster is None:
        raise KubeError(f"--cluster {flags.cluster}: no such cluster in the kubeconfig")
    if (cluster is None or not cluster.get("server")) and not flags.server:
        raise KubeError(f"kubeconfig: context {name!r}: cluster {cluster_name!r} has no server")
    cluster = cluster or {}
    user_name = flags.user or ctx.get("user")
    if flags.user and user_name not in config["users"]:
        raise KubeError(f"--user {flags.user}: no such user in the kubeconfig")
    user, user_base = config["users"].get(user_name, ({}, ""))
    why = next((k for k in ("exec", "auth-provider") if user.get(k)), None)
    if cluster.get("proxy-url"):
        why = "proxy-url"
    return Target(
        server=str(cluster.get("server") or flags.server).rstrip("/"),
        namespace=ctx.get("namespace") or "default",
        ca_file=_file(cluster.get("certificate-authority"), cluster_base),
        ca_data=_data(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        cert_file=_file(user.get("client-certificate"), user_base),
        cert_data=_data(user.get("client-certificate-data")),
        key_file=_file(user.get("client-key"), user_base),
        key_data=_data(user.get("client-key-data")),
        token=user.get("token"),
        token_file=_file(user.get("tokenFile"), user_base),
        username=user.get("username"),
        password=user.get("password"),
        impersonate=user.get("as") or None,
        impersonate_groups=tuple(str(g) for g in user["as-groups"]) if isinstance(user.get("as-groups"), list)
        else (),
        impersonate_uid=user.get("as-uid") or None,
        needs_client_library=why,
    )


def namespace_of(flags: Flags = Flags()) -> str:  # noqa: B008 - a frozen dataclass
    """kubectl's default namespace: the context's, else `default` (never an error)."""
    try:
        return _from_files(flags).namespace
    except KubeError:
        return "default"


def resolve_with_client_library(flags: Flags, target: Target) -> Target:
    """Let the `kubernetes` package resolve what this module does not (exec credential plugins,
    auth-provider): it runs the plugin and leaves a token or client certificate files in its
    Configuration, which our transport then uses. Credentials are resolved once per command."""
    from kubectl_agentroll.kube import api_client

    c = api_client(flags.kubeconfig, flags.context).configuration
    if getattr(c, "proxy", None):
        raise KubeError("kubeconfig: proxy-url is not supported by kubectl-agentroll; "
                        "reach the API server directly or through `kubectl proxy`")
    auth = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
    token = auth.split(" ", 1)[1] if auth and auth.lower().startswith("bearer ") else auth
    return replace(
        target, server=c.host.rstrip("/"), ca_file=c.ssl_ca_cert, ca_data=None, cert_data=None,
        key_data=None, token_file=None,
        insecure=not c.verify_ssl, tls_server_name=getattr(c, "tls_server_name", None),
        cert_file=c.cert_file, key_file=c.key_file, token=token,
        username=c.username or None, password=c.password or None,
    )
