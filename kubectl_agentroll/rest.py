"""A small Kubernetes REST transport: kubeconfig in, JSON over one keep-alive HTTPS connection out.

Why not the `kubernetes` package for everything: importing its generated client costs about half a
second, several times what `kubectl get` takes in total, and `status` is meant to be as quick as
kubectl. This module reads the kubeconfig itself (server, CA, client certificate, token, basic
auth, insecure-skip-tls-verify, tls-server-name, context namespace; several files in KUBECONFIG
merge like kubectl's) and talks HTTP with the standard library. Kubeconfigs this module does not
handle (exec credential plugins, auth-provider, proxy-url) are served through the `kubernetes`
client's `ApiClient.call_api` instead, so they keep working — only slower to start.

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
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
    return data if isinstance(data, Mapping) else {}


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


class ClientLibraryRest:
    """The same interface on the `kubernetes` package, for exec/auth-provider/proxy kubeconfigs."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubectl_agentroll.kube import api_client

        self.api = api_client(kubeconfig, context)

    def _call(self, method: str, path: str, what: str, query: Mapping | None, body: object,
              content_type: str | None, stream: bool = False):
        from kubectl_agentroll.kube import call

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        return call(
            self.api.call_api, path, method,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params=headers, body=body, auth_settings=["BearerToken"],
            _preload_content=False, _return_http_data_only=True,
            _request_timeout=None if stream else TIMEOUT, what=what,
        )

    def request(self, method: str, path: str, *, what: str, query: Mapping | None = None,
                body: object = None, content_type: str | None = None) -> dict:
        resp = self._call(method, path, what, query, body, content_type)
        return json.loads(resp.data) if resp.data else {}

    def stream(self, path: str, *, what: str, query: Mapping | None = None) -> Iterator[dict]:
        resp = self._call("GET", path, what, query, None, None, stream=True)
        try:
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            resp.release_conn()

    def close(self) -> None:
        self.api.close()


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def connect(kubeconfig: str | None = None, context: str | None = None):
    """A transport for the kubeconfig: the plain one when it can serve it, else the client library."""
    target = load_target(kubeconfig, context)
    if target.needs_client_library:
        return ClientLibraryRest(kubeconfig, context), target
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
