"""The HTTPS transport: concurrency, kept-alive connections, TLS names and large answers, against local servers."""

from __future__ import annotations

import gc
import http.server
import json
import os
import tempfile
import threading

import pytest

from kubectl_agentroll import rest
from kubectl_agentroll.kubeconfig import Target
from kubectl_agentroll.session import together


def serve(answer, tls=None) -> http.server.ThreadingHTTPServer:
    """An HTTP/1.1 keep-alive server on loopback (HTTPS with an `ssl.SSLContext`); `answer(handler)`
    gives each GET's JSON body. Call `shutdown()` when done."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's name
            body = answer(self)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def server():
    """A server whose answer to /both waits until two requests are in."""
    arrived = threading.Barrier(2, timeout=5)
    seen = []

    def answer(handler) -> bytes:
        seen.append((handler.path, handler.client_address[1]))
        if handler.path.startswith("/both"):
            arrived.wait()
        return json.dumps({"path": handler.path}).encode()

    httpd = serve(answer)
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()


def test_a_kept_alive_connection_the_server_closed_is_opened_again():
    """The API server closes idle keep-alive connections; the next request must not fail for it."""
    def answer(handler) -> bytes:
        handler.close_connection = True  # without saying so: as an idle timeout does
        return b'{"kind": "Rollout"}'

    httpd = serve(answer)
    try:
        api = rest.Rest(Target(server=f"http://127.0.0.1:{httpd.server_address[1]}"))
        assert [api.request("GET", "/x", what="x")["kind"] for _ in range(3)] == ["Rollout"] * 3
        api.close()
    finally:
        httpd.shutdown()


def test_requests_at_the_same_time_each_get_a_connection(server):
    url, seen = server
    api = rest.Rest(Target(server=url))
    first, second = together(lambda: api.request("GET", "/both/1", what="a"),
                             lambda: api.request("GET", "/both/2", what="b"))
    assert (first["path"], second["path"]) == ("/both/1", "/both/2")
    assert api.request("GET", "/after", what="c")["path"] == "/after"  # a kept-alive one, reused
    ports = [port for _, port in seen]
    assert len(set(ports[:2])) == 2 and ports[2] in ports[:2]
    api.close()


def test_together_keeps_the_order_and_raises_the_first_error():
    assert together(lambda: 1, lambda: "two") == [1, "two"]
    with pytest.raises(ValueError, match="bad"):
        together(lambda: 1, lambda: (_ for _ in ()).throw(ValueError("bad")))


def test_large_answers_leave_the_collector_as_they_found_it():
    big = {"items": [{"metadata": {"name": f"agent-{i}"}, "spec": {"n": [i, {"x": None}]}} for i in range(20000)]}
    payload = json.dumps(big).encode()
    assert len(payload) > rest.BIG
    assert gc.isenabled() and rest._loads(payload) == big and gc.isenabled()
    gc.disable()
    try:
        assert rest._loads(payload) == big and not gc.isenabled()
    finally:
        gc.enable()


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server whose certificate names `api.internal` only (not 127.0.0.1)."""
    import ssl

    from webhook import certs

    state = certs.renew(None, dns_names=["api.internal"], ips=[])
    paths = certs.write(state, tmp_path)

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(paths["tls.crt"], paths["tls.key"])
    httpd = serve(lambda _: b'{"kind": "Status"}', tls)
    yield f"https://127.0.0.1:{httpd.server_address[1]}", state.ca_pem
    httpd.shutdown()


@pytest.mark.parametrize("server_name, ok", [("api.internal", True), (None, False), ("other.internal", False)])
def test_the_certificate_is_checked_against_the_tls_server_name(tls_server, server_name, ok):
    url, ca = tls_server
    api = rest.Rest(Target(server=url, ca_data=ca, tls_server_name=server_name))
    if ok:
        assert api.request("GET", "/version", what="version") == {"kind": "Status"}
    else:
        with pytest.raises(rest.KubeError, match=r"^version: cannot reach the API server .*certificate"):
            api.request("GET", "/version", what="version")
    api.close()


@pytest.fixture
def mtls_server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 that accepts only clients with a certificate from its CA; gives
    the URL, the CA and a client certificate and key (PEM), as a kubeconfig embeds them."""
    import ssl

    from webhook import certs

    ca, ca_key = certs.new_ca("test-ca", days=1)
    serving, serving_key = certs.issue(ca, ca_key, "127.0.0.1", ips=["127.0.0.1"])
    client, client_key = certs.issue(ca, ca_key, "admin", client=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_verify_locations(cadata=ca.public_bytes(certs.PEM).decode())
    pem = tmp_path_factory.mktemp("serving") / "tls.pem"
    pem.write_bytes(serving.public_bytes(certs.PEM) + certs.key_pem(serving_key))
    tls.load_cert_chain(pem)
    httpd = serve(lambda h: json.dumps({"client": h.connection.getpeercert()["subject"][0][0][1]}).encode(), tls)
    yield (f"https://127.0.0.1:{httpd.server_address[1]}", ca.public_bytes(certs.PEM),
           client.public_bytes(certs.PEM), certs.key_pem(client_key))
    httpd.shutdown()


def test_an_embedded_client_certificate_is_loaded_without_writing_the_key_to_disk(mtls_server, monkeypatch):
    url, ca, cert, key = mtls_server
    if not hasattr(os, "memfd_create"):
        pytest.skip("memory files are Linux-only; the temp-dir fallback is tested below")
    monkeypatch.setattr(tempfile, "TemporaryDirectory", None)  # any use of a temp dir fails
    api = rest.Rest(Target(server=url, ca_data=ca, cert_data=cert, key_data=key))
    assert api.request("GET", "/version", what="version") == {"client": "admin"}
    api.close()


def _refused(*_args):
    raise PermissionError(1, "Operation not permitted")  # as a seccomp filter answers


@pytest.mark.parametrize("memfd_create", [None, _refused], ids=["no memory files", "refused by a sandbox"])
def test_without_memory_files_the_embedded_certificate_goes_through_a_private_temp_dir(
        mtls_server, monkeypatch, tmp_path, memfd_create):
    url, ca, cert, key = mtls_server
    if memfd_create is None:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    else:
        monkeypatch.setattr(os, "memfd_create", memfd_create, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    api = rest.Rest(Target(server=url, ca_data=ca, cert_data=cert, key_data=key))
    assert api.request("GET", "/version", what="version") == {"client": "admin"}
    assert list(tmp_path.iterdir()) == []  # removed once loaded
    api.close()
