"""The HTTPS transport: JSON over one keep-alive connection of the standard library's `http.client`.

Why not the `kubernetes` package: importing its generated client costs about half a second, several
times what `kubectl get` takes in total, and `status` is meant to be as quick as kubectl. The
connection (TCP + TLS handshake) is opened in the background while the command imports and
prepares (`warm_up`). Errors are `kube.KubeError`, one line, phrased exactly as `kube.call`
phrases them.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from urllib.parse import urlencode, urlsplit

from kubectl_agentroll.kube import KubeError
from kubectl_agentroll.kubeconfig import Flags, Target, load_target

TIMEOUT = 30.0


def _ssl_context(t: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=t.ca_file, cadata=t.ca_data.decode() if t.ca_data else None)
    if t.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if t.cert_file or t.cert_data:
        if t.cert_data or t.key_data:
            with _pem_files(t.cert_data, t.key_data) as (cert, key):
                ctx.load_cert_chain(t.cert_file or cert, t.key_file or key)
        else:
            ctx.load_cert_chain(t.cert_file, t.key_file)
    return ctx


@contextlib.contextmanager
def _pem_files(*pems: bytes | None) -> Iterator[list[str | None]]:
    """Paths `ssl` can load the kubeconfig's embedded certificate and key from, as it loads them only
    from files. On Linux they are anonymous memory files: the private key never touches a disk, and
    `tempfile` (~4 ms to import) is not needed. Elsewhere, or where a sandbox refuses memory files,
    a private temp dir."""
    fds = _memory_files(pems)
    if fds is not None:
        try:
            yield [None if fd is None else f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            _close(fds)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentroll-") as tmp:
        paths: list[str | None] = []
        for i, pem in enumerate(pems):
            if not pem:
                paths.append(None)
                continue
            path = os.path.join(tmp, f"{i}.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            paths.append(path)
        yield paths


def _memory_files(pems: tuple[bytes | None, ...]) -> list[int | None] | None:
    """A `memfd_create` file holding each PEM (None for none), or None when there are no such files."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    fds: list[int | None] = []
    try:
        for pem in pems:
            fds.append(os.memfd_create("agentroll-pem", os.MFD_CLOEXEC) if pem else None)
            if pem:
                with open(fds[-1], "wb", closefd=False) as fh:
                    fh.write(pem)
    except OSError:
        _close(fds)
        return None
    return fds


def _close(fds: list[int | None]) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


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


BIG = 256 * 1024


def _loads(payload: bytes) -> object:
    """JSON as Python data; large answers (lists of many objects) through orjson, several times
    faster, which is imported only then: its import costs more than a small answer's decoding.

    A large answer is a million or so new dicts, lists and strings, all acyclic, that live as long as
    the command: the cyclic garbage collector would scan them again and again, during the decoding
    and after it (at 1,000 Rollouts that doubled the CPU time of decoding and building the rows), so
    it is off while decoding and the result is moved out of its sight (`gc.freeze`); reference
    counting still frees it."""
    if len(payload) < BIG:
        return json.loads(payload)
    import gc

    import orjson

    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(payload)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _warning_text(header: str) -> str:
    """`299 - "text"` (RFC 7234 warn-code, agent, quoted text) as the text alone."""
    code, _, rest = header.partition(" ")
    _agent, _, text = rest.partition(" ")
    if code.isdigit() and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return header


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


class Rest:
    """The `transport.Transport` over HTTPS: one keep-alive connection, plus one per watch stream."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.timeout = TIMEOUT if target.timeout is None else (target.timeout or None)
        url = urlsplit(target.server)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._base = url.path.rstrip("/")
        self._ssl = _ssl_context(target) if self._https else None
        self._idle: list[http.client.HTTPConnection] = []  # kept alive, not in use (list ops are atomic)
        self._warming = None
        self.warnings: list[str] = []  # the API server's (and admission webhooks') Warning headers

    def warm_up(self) -> None:
        """Open a connection in the background while the caller goes on importing and preparing;
        the first request waits for it. Failures surface on that request."""
        import threading

        def connect() -> None:
            conn = self._connect(self.timeout)
            try:
                conn.connect()
            except (OSError, ValueError):
                conn.close()
                return
            self._idle.append(conn)

        self._warming = threading.Thread(target=connect, daemon=True)
        self._warming.start()

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return _Https(self._host, self._port, timeout, self._ssl, self.target.tls_server_name)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

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
        if t.impersonate:
            headers["Impersonate-User"] = t.impersonate
        if t.impersonate_uid:
            headers["Impersonate-Uid"] = t.impersonate_uid
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, conn: http.client.HTTPConnection, method: str, url: str, headers: dict,
              body: bytes | None) -> http.client.HTTPResponse:
        conn.putrequest(method, url, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        for group in self.target.impersonate_groups:
            conn.putheader("Impersonate-Group", group)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse()

    def _url(self, path: str, query: Mapping | None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self._base + path + (f"?{urlencode(q)}" if q else "")

    def request(self, method: str, path: str, *, what: str, query: Mapping | None = None,
                body: object = None, content_type: str | None = None) -> dict:
        """Thread-safe: requests made at the same time go over connections of their own."""
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if body is not None else None)
        url = self._url(path, query)
        warming = self._warming
        if warming is not None:
            warming.join()
            self._warming = None
        for attempt in (1, 2):
            try:
                conn, reused = self._idle.pop(), True
            except IndexError:
                conn, reused = self._connect(self.timeout), False
            try:
                response = self._send(conn, method, url, headers, data)
                payload = response.read()
                self.warnings += [_warning_text(w) for w in response.headers.get_all("Warning") or []]
                if response.will_close:
                    conn.close()
                else:
                    self._idle.append(conn)
                break
            except (BrokenPipeError, ConnectionResetError, http.client.BadStatusLine, ssl.SSLEOFError) as err:
                conn.close()
                if attempt == 2 or not reused:  # a kept-alive connection the server had closed
                    raise KubeError(f"{what}: cannot reach the API server "
                                    f"({self.target.server}): {_describe(err)}") from None
            except (OSError, ValueError, http.client.HTTPException) as err:
                conn.close()
                raise KubeError(f"{what}: cannot reach the API server "
                                f"({self.target.server}): {_describe(err)}") from None
        if response.status >= 400:
            raise _error(response.status, payload, response.reason, what)
        try:
            return _loads(payload) if payload else {}
        except ValueError:
            raise KubeError(f"{what}: the API server answered something that is not JSON") from None

    def stream(self, path: str, *, what: str, query: Mapping | None = None) -> Iterator[dict]:
        conn = None
        try:
            conn = self._connect(None)
            response = self._send(conn, "GET", self._url(path, query), self._headers(None), None)
            if response.status >= 400:
                raise _error(response.status, response.read(), response.reason, what)
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        except (OSError, ValueError, http.client.HTTPException) as err:
            raise KubeError(f"{what}: watch interrupted: {_describe(err)}") from None
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        while self._idle:
            with contextlib.suppress(OSError):
                self._idle.pop().close()


class _Https(http.client.HTTPSConnection):
    """HTTPS whose certificate is checked against the kubeconfig's tls-server-name when it has one."""

    def __init__(self, host: str, port: int, timeout: float | None, context: ssl.SSLContext | None,
                 server_name: str | None) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name or host

    def connect(self) -> None:
        sock = socket.create_connection((_idna_free(self.host), self.port), self.timeout, self.source_address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=_idna_free(self._server_name))


def _idna_free(host: str) -> str | bytes:
    """An ASCII host name as bytes, which `socket` and `ssl` take as it is: given text they run it
    through the IDNA codec, whose first use imports it (~2.5 ms, a fiftieth of `status NAME`)."""
    return host.encode("ascii") if host.isascii() else host


def connect(flags: Flags = Flags()) -> tuple[Rest, Target]:  # noqa: B008 - a frozen dataclass
    """The HTTPS transport for the kubeconfig and connection flags."""
    target = load_target(flags)
    try:
        return Rest(target), target
    except (OSError, ssl.SSLError, ValueError) as err:
        raise KubeError(f"kubeconfig: TLS settings: {_describe(err)}") from None
