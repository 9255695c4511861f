"""A small Kubernetes REST transport: kubeconfig in, JSON over one keep-alive HTTPS connection out.

Why not the `kubernetes` package for everything: importing its generated client costs about half a
second, several times what `kubectl get` takes in total, and `status` is meant to be as quick as
kubectl. This module reads the kubeconfig itself (server, CA, client certificate, token, basic
auth, insecure-skip-tls-verify, tls-server-name, context namespace; several files in KUBECONFIG
merge like kubectl's) and talks HTTP with the standard library. Kubeconfigs this module does not
resolve itself (exec credential plugins, auth-provider) are resolved by the `kubernetes` package
(slower to start), whose result this transport then uses; proxy-url is not supported.

Errors are `kube.KubeError`, one line, phrased exactly as `kube.call` phrases them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from kubectl_agentroll.kube import KubeError

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 30.0


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
    needs_client_library: str | None = None  # why the plain transport cannot serve this user


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
# answers what yaml.safe_load would (tests/unit/test_rest.py checks that, also by property).


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


def load_target(kubeconfig: str | None = None, context: str | None = None) -> Target:
    """Resolve --kubeconfig/KUBECONFIG/~/.kube/config and --context; in a pod, the service account."""
    paths = kubeconfig_paths(kubeconfig)
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
        raise KubeError("kubeconfig: no kubeconfig found (set --kubeconfig or KUBECONFIG)")
    config = merged_kubeconfig(paths)
    name = context or config["current-context"]
    if not name:
        raise KubeError("kubeconfig: no current-context set (use --context)")
    if name not in config["contexts"]:
        raise KubeError(f"--context {name}: no such context in the kubeconfig" if context
                        else f"kubeconfig: current-context {name!r} is not defined")
    ctx, _ = config["contexts"][name]
    cluster, cluster_base = config["clusters"].get(ctx.get("cluster"), (None, ""))
    if cluster is None or not cluster.get("server"):
        raise KubeError(f"kubeconfig: context {name!r}: cluster {ctx.get('cluster')!r} has no server")
    user, user_base = config["users"].get(ctx.get("user"), ({}, ""))
    why = next((k for k in ("exec", "auth-provider") if user.get(k)), None)
    if cluster.get("proxy-url"):
        why = "proxy-url"
    return Target(
        server=str(cluster["server"]).rstrip("/"),
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
        needs_client_library=why,
    )


def namespace_of(kubeconfig: str | None = None, context: str | None = None) -> str:
    """kubectl's default namespace: the context's, else `default` (never an error)."""
    try:
        return load_target(kubeconfig, context).namespace
    except KubeError:
        return "default"


def _ssl_context(t: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=t.ca_file, cadata=t.ca_data.decode() if t.ca_data else None)
    if t.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if t.cert_file or t.cert_data:
        if t.cert_data or t.key_data:
            # ssl loads certificates only from files: write them to a private temp dir, load, delete.
            with tempfile.TemporaryDirectory(prefix="agentroll-") as tmp:
                cert = t.cert_file or os.path.join(tmp, "cert.pem")
                key = t.key_file or os.path.join(tmp, "key.pem")
                for path, data in ((cert, t.cert_data), (key, t.key_data)):
                    if data:
                        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                        with os.fdopen(fd, "wb") as fh:
                            fh.write(data)
                ctx.load_cert_chain(cert, key)
        else:
            ctx.load_cert_chain(t.cert_file, t.key_file)
    return ctx


def _error(status: int, body: bytes, reason: str, what: str) -> KubeError:
    try:
        message = json.loads(body or b"{}").get("message")
    except (ValueError, AttributeError):
        message = None
    message = message or reason or f"HTTP {status}"
    if status == 404:
        return KubeError(f"{what} not found", 404)
    if status in (401, 403):
        return KubeError(f"{what}: not allowed: {message}", status)
    return KubeError(f"{what}: {message}", status)


class ProtocolError(OSError):
    """The server's answer is not the HTTP/1.1 we speak."""


class _Connection:
    """Just enough HTTP/1.1 for the API server: keep-alive, Content-Length and chunked bodies.

    `http.client` would do, but importing it (and the email parser it pulls in) costs ~10 ms.
    """

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None,
                 server_name: str | None, timeout: float | None) -> None:
        import socket

        # an ASCII host as bytes: getaddrinfo then skips the idna codec (and its import)
        address = host.encode("ascii") if host.isascii() else host
        sock = socket.create_connection((address, port), timeout)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=server_name or host)
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.host_header = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.open = True

    def send(self, method: str, target: str, headers: Mapping, body: bytes | None) -> None:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def head(self) -> tuple[int, str, dict]:
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionResetError("the API server closed the connection")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise ProtocolError(f"unexpected status line {line[:80]!r}")
        headers = {}
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.open = False
        return int(code), reason, headers

    def chunks(self, headers: Mapping) -> Iterator[bytes]:
        """The body as it arrives."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise ProtocolError("the body ended in the middle of a chunk")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                data = self.rfile.read(size)
                self.rfile.readline(65537)  # the CRLF after the chunk
                if len(data) < size:
                    raise ProtocolError("the body ended in the middle of a chunk")
                yield data
        elif "content-length" in headers:
            length = int(headers["content-length"])
            data = self.rfile.read(length)
            if len(data) < length:
                raise ProtocolError("the body is shorter than its Content-Length")
            yield data
        else:
            self.open = False
            yield self.rfile.read()

    def close(self) -> None:
        self.open = False
        for closable in (self.rfile, self.sock):
            with contextlib.suppress(OSError):
                closable.close()


class Rest:
    """JSON requests over one keep-alive connection (plus one per watch stream)."""

    def __init__(self, target: Target, timeout: float = TIMEOUT) -> None:
        self.target = target
        self.timeout = timeout
        url = urlsplit(target.server)
        https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if https else 80)
        self._base = url.path.rstrip("/")
        self._ssl = _ssl_context(target) if https else None
        self._conn: _Connection | None = None
        self._warming = None

    def warm_up(self) -> None:
        """Open the connection (TCP + TLS handshake) in the background while the caller goes on
        importing and preparing; the first request waits for it. Failures surface on that request."""
        import threading

        def connect() -> None:
            try:
                self._conn = self._connect(self.timeout)
            except (OSError, ValueError):
                self._conn = None

        self._warming = threading.Thread(target=connect, daemon=True)
        self._warming.start()

    def _connect(self, timeout: float | None) -> _Connection:
        return _Connection(self._host, self._port, self._ssl, self.target.tls_server_name, timeout)

    def _headers(self, content_type: str | None) -> dict:
        headers = {"Accept": "application/json", "User-Agent": "kubectl-agentroll"}
        t = self.target
        token = t.token
        if not token and t.token_file:
            try:
                with open(t.token_file, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except OSError as err:
                raise KubeError(f"kubeconfig: tokenFile {t.token_file}: {err.strerror}") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif t.username is not None and t.password is not None:
            basic = base64.b64encode(f"{t.username}:{t.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, path: str, query: Mapping | None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self._base + path + (f"?{urlencode(q)}" if q else "")

    def request(self, method: str, path: str, *, what: str, query: Mapping | None = None,
                body: object = None, content_type: str | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if body is not None else None)
        url = self._url(path, query)
        for attempt in (1, 2):
            if self._warming is not None:
                self._warming.join()
                self._warming = None
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = self._connect(self.timeout)
                self._conn.send(method, url, headers, data)
                status, reason, response_headers = self._conn.head()
                payload = b"".join(self._conn.chunks(response_headers))
                if not self._conn.open:
                    self.close()
                break
            except (BrokenPipeError, ConnectionResetError) as err:
                self.close()
                if attempt == 2 or not reused:  # a kept-alive connection the server had closed
                    raise KubeError(f"{what}: cannot reach the API server "
                                    f"({self.target.server}): {_describe(err)}") from None
            except (OSError, ValueError) as err:
                self.close()
                raise KubeError(f"{what}: cannot reach the API server "
                                f"({self.target.server}): {_describe(err)}") from None
        if status >= 400:
            raise _error(status, payload, reason, what)
        try:
            return json.loads(payload) if payload else {}
        except ValueError:
            raise KubeError(f"{what}: the API server answered something that is not JSON") from None

    def stream(self, path: str, *, what: str, query: Mapping | None = None) -> Iterator[dict]:
        """A watch: one decoded event per line, until the server ends it."""
        conn = None
        try:
            conn = self._connect(None)
            conn.send("GET", self._url(path, query), self._headers(None), None)
            status, reason, headers = conn.head()
            if status >= 400:
                raise _error(status, b"".join(conn.chunks(headers)), reason, what)
            pending = b""
            for chunk in conn.chunks(headers):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if pending.strip():
                yield json.loads(pending)
        except (OSError, ValueError) as err:
            raise KubeError(f"{what}: watch interrupted: {_describe(err)}") from None
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def target_from_client_library(kubeconfig: str | None, context: str | None, namespace: str) -> Target:
    """Let the `kubernetes` package resolve what this module does not (exec credential plugins,
    auth-provider): it runs the plugin and leaves a token or client certificate files in its
    Configuration, which our transport then uses. Credentials are resolved once per command."""
    from kubectl_agentroll.kube import api_client

    c = api_client(kubeconfig, context).configuration
    if getattr(c, "proxy", None):
        raise KubeError("kubeconfig: proxy-url is not supported by kubectl-agentroll; "
                        "reach the API server directly or through `kubectl proxy`")
    auth = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
    token = auth.split(" ", 1)[1] if auth and auth.lower().startswith("bearer ") else auth
    return Target(
        server=c.host.rstrip("/"), namespace=namespace, ca_file=c.ssl_ca_cert,
        insecure=not c.verify_ssl, tls_server_name=getattr(c, "tls_server_name", None),
        cert_file=c.cert_file, key_file=c.key_file, token=token,
        username=c.username or None, password=c.password or None,
    )


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def connect(kubeconfig: str | None = None, context: str | None = None):
    """A transport for the kubeconfig: the plain one when it can serve it, else the client library."""
    target = load_target(kubeconfig, context)
    if target.needs_client_library == "proxy-url":
        raise KubeError("kubeconfig: proxy-url is not supported by kubectl-agentroll; "
                        "reach the API server directly or through `kubectl proxy`")
    if target.needs_client_library:
        target = target_from_client_library(kubeconfig, context, target.namespace)
    try:
        return Rest(target), target
    except (OSError, ssl.SSLError, ValueError) as err:
        raise KubeError(f"kubeconfig: TLS settings: {_describe(err)}") from None


# --- paths -----------------------------------------------------------------------------------------

ROLLOUTS = ("/apis/argoproj.io/v1alpha1", "rollouts")
ANALYSIS_RUNS = ("/apis/argoproj.io/v1alpha1", "analysisruns")
REPLICA_SETS = ("/apis/apps/v1", "replicasets")


def path(kind: tuple[str, str], namespace: str | None, name: str | None = None,
         subresource: str | None = None) -> str:
    prefix, plural = kind
    p = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    if name:
        p += f"/{name}"
    if subresource:
        p += f"/{subresource}"
    return p
