"""Hostile and broken clients against the webhook process over real HTTPS on loopback (issue 10).

Each test asserts what the server does with the bad client, and that a valid request is answered
right after. The server runs with short timeouts (1 s per request, 2 s idle) so stalls end fast.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import socket
import ssl
import time

import pytest

from kubectl_agentroll.mutate import MAX_INSERTED_STEPS
from tests.unit.rollouts import request, rollout
from tests.unit.serverproc import Webhook, free_port

TIMEOUTS = ("--request-timeout", "1", "--idle-timeout", "2")
API_SERVER_LIMIT = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def hook(tmp_path_factory):
    server = Webhook(tmp_path_factory.mktemp("hostile"), *TIMEOUTS)
    yield server
    server.stop()


def review_body(req: dict) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": req}, separators=(",", ":")).encode()


def steps_body(head: list[dict], filler: dict) -> bytes:
    """A Rollout with `head` then `filler` steps up to just under the API server's body limit."""
    base = len(review_body(request(rollout(strategy={"canary": {"steps": head}}))))
    count = (API_SERVER_LIMIT - 64 * 1024 - base) // (len(json.dumps(filler, separators=(",", ":"))) + 1)
    return review_body(request(rollout(strategy={"canary": {"steps": head + [filler] * count}})))


def assert_still_serving(hook: Webhook) -> None:
    status, review = hook.review(request(rollout()))
    assert status == 200 and review["response"]["patchType"] == "JSONPatch"


def metric(hook: Webhook, outcome: str) -> int:
    text = hook.get("/metrics")[1].decode()
    found = re.search(rf'agentroll_webhook_requests_total{{outcome="{outcome}"}} (\d+)', text)
    return int(found.group(1)) if found else 0


def tls_socket(hook: Webhook, context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", hook.port))
    return (context or hook.context()).wrap_socket(raw, server_hostname="127.0.0.1")


def closed_within(sock: ssl.SSLSocket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def post_raw(hook: Webhook, body: bytes, headers: dict[str, str] | None = None):
    conn = hook.connect()
    conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json",
                                                        **(headers or {})})
    response = conn.getresponse()
    return response.status, response.read(), response


def test_amplification_is_denied_naming_the_limit(hook):
    body = steps_body([], {"setWeight": 5})  # ~190,000 steps, each would get an analysis step
    assert len(body) > 2.8 * 2**20
    status, data, _ = post_raw(hook, body)
    assert status == 200
    response = json.loads(data)["response"]
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["message"].startswith(
        f"agentroll: spec.strategy.canary.steps: more than {MAX_INSERTED_STEPS} steps to insert")
    assert len(data) < 2048
    assert_still_serving(hook)


def test_largest_admissible_rollout_is_patched(hook):
    gated = [{"setWeight": 1 + i % 99} for i in range(MAX_INSERTED_STEPS)]
    status, data, _ = post_raw(hook, steps_body(gated, {"setWeight": 100}))
    assert status == 200
    patch = json.loads(base64.b64decode(json.loads(data)["response"]["patch"]))
    assert sum(op["path"].startswith("/spec/strategy/canary/steps/") for op in patch) == MAX_INSERTED_STEPS
    assert_still_serving(hook)


@pytest.mark.parametrize("sent", [
    b"POST /mutate HTTP/1.1\r\nHost: x\r\n",  # headers never finish
    b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",  # body stops
    b"",  # TLS done, nothing sent
], ids=["slow-headers", "slow-body", "silent"])
def test_stalled_client_is_dropped_logged_and_counted(hook, sent):
    before = metric(hook, "timeout")
    sock = tls_socket(hook)
    sock.sendall(sent)
    assert closed_within(sock, 5), "a stalled request must be dropped after --request-timeout (1s)"
    sock.close()
    assert metric(hook, "timeout") == before + 1
    assert 'timeout 1000.00ms "request not received and answered in 1s"' in hook.output()
    assert_still_serving(hook)


def test_upload_abandoned_mid_body_gets_a_log_line_and_a_metric(hook):
    before = metric(hook, "aborted")
    sock = tls_socket(hook)
    sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    time.sleep(0.2)
    sock.close()
    assert '"client went away before the body was complete"' in hook.logged("went away")
    assert metric(hook, "aborted") == before + 1
    assert_still_serving(hook)


def test_idle_keepalive_connection_is_closed_after_the_idle_timeout(hook):
    conn = hook.connect()
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok"
    assert not closed_within(conn.sock, 1.3), "idle connections get --idle-timeout, not the request timeout"
    assert closed_within(conn.sock, 5)
    assert_still_serving(hook)


def test_body_that_does_not_decode_is_a_400_with_a_log_line_and_a_metric(hook):
    before = metric(hook, "bad_request")
    status, data, _ = post_raw(hook, review_body(request(rollout())), {"Content-Encoding": "gzip"})
    assert status == 400
    assert json.loads(data) == {"error": "body does not read as Content-Encoding gzip: RequestPayloadError"}
    assert metric(hook, "bad_request") == before + 1
    out = hook.logged("bad_request")
    assert 'bad_request' in out and "Traceback" not in out
    assert_still_serving(hook)


def test_oversized_body_is_a_413_with_a_log_line_and_a_metric(hook):
    before = metric(hook, "too_large")
    status, data, _ = post_raw(hook, b"{" + b" " * (8 * 2**20) + b"}")
    assert status == 413 and json.loads(data) == {"error": "body over 7340032 bytes"}
    assert metric(hook, "too_large") == before + 1
    assert 'too_large' in hook.logged('"body over 7340032 bytes"')
    assert_still_serving(hook)


@pytest.mark.parametrize("raw", [
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03garbage\r\n\r\n",
    b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
], ids=["long-request-line", "garbage", "bad-content-length"])
def test_malformed_http_gets_a_400_a_log_line_and_a_metric_without_traceback(hook, raw):
    before = metric(hook, "http_400")
    sock = tls_socket(hook)
    sock.sendall(raw)
    sock.settimeout(5)
    head = sock.recv(4096)
    sock.close()
    assert head.startswith(b"HTTP/1.0 400 ") or head.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nServer: agentroll-webhook\r\n" in head
    assert metric(hook, "http_400") == before + 1
    assert "Traceback" not in hook.output()
    assert_still_serving(hook)


def test_unknown_path_is_logged_and_counted(hook):
    before = metric(hook, "http_404")
    assert hook.get("/nope")[0] == 404
    assert metric(hook, "http_404") == before + 1
    assert 'http_404' in hook.logged('"GET /nope"')


def test_request_fields_cannot_forge_or_flood_log_lines(hook):
    forged = "2030-01-01T00:00:00.000Z uid=forged evil/forged patched 0.10ms"
    req = request(rollout())
    req["uid"], req["namespace"] = "abc\n" + forged, "ns\rx"
    assert hook.review(req)[0] == 200
    flood = request(rollout())
    flood["uid"] = "u" * 100_000
    assert hook.review(flood)[0] == 200
    assert_still_serving(hook)
    lines = hook.logged("u" * 256 + "...(+99744)").splitlines()
    assert not any(line.startswith(forged) for line in lines)
    assert any('uid="abc\\n2030-01-01T00:00:00.000Z uid=forged' in line for line in lines)
    assert max(len(line) for line in lines) < 2048


def test_non_string_namespace_is_a_bad_request_not_an_internal_error(hook):
    req = request(rollout())
    req["namespace"] = ["a", "b"]
    status, data = hook.review(req)
    assert status == 400 and json.loads(data) == {"error": "request.namespace is not a string"}
    assert_still_serving(hook)


def test_server_header_names_no_version(hook):
    _, _, response = post_raw(hook, review_body(request(rollout())))
    assert response.getheader("Server") == "agentroll-webhook"


def test_tls_1_2_refuses_cbc_suites_and_accepts_aead(hook):
    cbc = hook.context()
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers("AES128-SHA256:AES256-SHA256:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384")
    with pytest.raises(ssl.SSLError):
        tls_socket(hook, cbc)
    aead = hook.context()
    aead.maximum_version = ssl.TLSVersion.TLSv1_2
    sock = tls_socket(hook, aead)
    assert sock.version() == "TLSv1.2" and ("GCM" in sock.cipher()[0] or "CHACHA20" in sock.cipher()[0])
    sock.close()
    assert_still_serving(hook)


def test_sigterm_with_a_stuck_upload_exits_after_the_request_timeout(tmp_path):
    server = Webhook(tmp_path, *TIMEOUTS, "--shutdown-timeout", "5")
    try:
        sock = tls_socket(server)
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        time.sleep(0.3)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(5) == 0
        assert time.monotonic() - started < 5, "one shutdown deadline, not two"
        assert "1 with a request in progress" in server.output()
        sock.close()
    finally:
        server.stop()


def test_descriptor_exhaustion_is_logged_at_a_bounded_rate_and_recovers(tmp_path):
    server = Webhook(tmp_path, *TIMEOUTS, nofile=64)
    held = []
    try:
        try:
            for _ in range(120):
                held.append(socket.create_connection(("127.0.0.1", server.port)))
            time.sleep(3)
            out = server.output()
            assert "Too many open files" in out or "out of system resource" in out
            assert len(out.splitlines()) < 40, f"{len(out.splitlines())} lines in 3 s"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert_still_serving(server)
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline, "did not recover: " + server.output()[-2000:]
                time.sleep(0.2)
    finally:
        server.stop()


def test_metrics_port_serves_metrics_only_over_plain_http(tmp_path):
    port = free_port()
    server = Webhook(tmp_path, "--metrics-port", str(port))
    try:
        assert_still_serving(server)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        assert 'agentroll_webhook_requests_total{outcome="patched"} 1' in response.read().decode()
        conn.request("POST", "/mutate", body=b"{}")
        assert conn.getresponse().status == 404
    finally:
        server.stop()
