"""The webhook over real HTTPS on loopback, as a separate process, with certificates from `certs`."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import jsonpatch
import pytest

from tests.unit.rollouts import request, rollout
from tests.unit.serverproc import WEBHOOK, Webhook, free_port, make_certs
from webhook.tls import ReloadingTLS


@pytest.fixture
def webhook(tmp_path):
    hook = Webhook(tmp_path)
    yield hook
    hook.stop()


def test_certs_command_writes_ca_cert_and_private_key(tmp_path):
    out = make_certs(tmp_path / "c")
    assert {p.name for p in out.iterdir()} == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (out / "ca.key").stat().st_mode & 0o777 == 0o600
    ctx = ssl.create_default_context(cafile=out / "ca.crt")
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_certs_without_sans_is_a_one_line_error(tmp_path):
    result = subprocess.run([*WEBHOOK, "certs", "--out-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["Error: --ip/--dns-name: at least one --dns-name or --ip is needed for the certificate's SANs"]


def test_opted_in_rollout_is_patched(webhook):
    status, review = webhook.review(request(rollout()))
    assert status == 200
    response = review["response"]
    assert response["uid"] == "0b9c2f6e-1111-4ad2-9f0e-000000000001"
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    out = jsonpatch.apply_patch(rollout(), patch)
    assert out["spec"]["template"]["metadata"]["labels"]["agentroll.dev/prompt-version"] == "support-v7"
    line = "uid=0b9c2f6e-1111-4ad2-9f0e-000000000001 agents/support-agent patched"
    assert line in webhook.logged(line)


def test_denial_carries_the_message(webhook):
    req = request(rollout(annotations={"agentroll.dev/inject": "maybe"}))
    status, review = webhook.review(req)
    assert status == 200
    assert review["response"]["allowed"] is False
    assert review["response"]["status"]["message"] == "agentroll: agentroll.dev/inject: expected \"true\" or \"false\", got 'maybe'"


def test_not_opted_in_is_allowed_without_patch(webhook):
    _, review = webhook.review(request(rollout(annotations={})))
    assert review["response"] == {"uid": "0b9c2f6e-1111-4ad2-9f0e-000000000001", "allowed": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[]", "body is not an AdmissionReview"),
        (b'{"kind": "Pod"}', "body is not an AdmissionReview"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "a"}}', "not supported"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "has no request"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}', "request.uid is missing"),
    ],
)
def test_bad_input_is_400_with_a_message(webhook, body, message):
    status, data = webhook.send("POST", "/mutate", body)
    assert status == 400
    assert message in json.loads(data)["error"]
    assert webhook.get("/healthz")[0] == 200


def test_garbage_objects_inside_a_valid_review_never_crash(webhook):
    for obj in (None, [], "x", {"metadata": 5}, {"metadata": {"annotations": {"agentroll.dev/inject": "true"}}, "spec": []}):
        req = request(rollout())
        req["object"] = obj
        status, review = webhook.review(req)
        assert status == 200, (obj, review)
        assert review["response"]["uid"] == req["uid"]
    assert webhook.get("/healthz")[0] == 200


def test_body_size_limit(webhook):
    big = rollout()
    big["metadata"]["annotations"]["padding"] = "x" * (6 * 1024 * 1024)
    status, review = webhook.review(request(big))
    assert status == 200 and review["response"]["allowed"]
    status, _ = webhook.send("POST", "/mutate", b"{" + b" " * (7 * 1024 * 1024 + 10) + b"}")
    assert status == 413


def test_metrics_count_outcomes_and_latency(webhook):
    webhook.review(request(rollout()))
    webhook.send("POST", "/mutate", b"nope")
    status, text = webhook.get("/metrics")
    text = text.decode()
    assert status == 200
    assert 'agentroll_webhook_requests_total{outcome="patched"} 1' in text
    assert 'agentroll_webhook_requests_total{outcome="bad_request"} 1' in text
    assert 'agentroll_webhook_request_duration_seconds_bucket{le="+Inf"} 2' in text
    assert webhook.get("/readyz")[0] == 200


def test_server_tls_configuration_before_and_after_a_reload(tmp_path):
    """The server's own contexts, not a handshake: this machine's OpenSSL client refuses TLS < 1.2
    by itself, so a refused TLS 1.1 handshake would prove nothing about the server."""
    certs = make_certs(tmp_path / "c")
    tls = ReloadingTLS(certs / "tls.crt", certs / "tls.key")
    new = make_certs(tmp_path / "new")
    for name in ("tls.key", "tls.crt"):
        shutil.copy(new / name, certs / f"{name}.next")
        os.replace(certs / f"{name}.next", certs / name)
    contexts = [tls.context, tls.current]
    assert tls.check()
    contexts.append(tls.current)
    for ctx in contexts:
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12, "no TLS 1.2 suite left"
        assert all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12), [c["name"] for c in tls12]


def test_plain_http_is_not_served(webhook):
    conn = http.client.HTTPConnection("127.0.0.1", webhook.port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()


def _served_cert(webhook) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", webhook.port)) as raw, ctx.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True)


def test_certificate_rotation_while_requests_are_in_flight(webhook, tmp_path):
    new = make_certs(tmp_path / "new")
    webhook.ca_files.append(new / "ca.crt")
    before = _served_cert(webhook)
    failures, successes, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                status, _ = webhook.review(request(rollout()))
                (successes if status == 200 else failures).append(status)
            except Exception as err:  # noqa: BLE001 - every failure is recorded and asserted on
                failures.append(repr(err))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        # A half-done rotation (new certificate, old key) must not be served.
        shutil.copy(new / "tls.crt", webhook.certs / "tls.crt.next")
        os.replace(webhook.certs / "tls.crt.next", webhook.certs / "tls.crt")
        time.sleep(0.6)
        assert _served_cert(webhook) == before
        shutil.copy(new / "tls.key", webhook.certs / "tls.key.next")
        os.replace(webhook.certs / "tls.key.next", webhook.certs / "tls.key")
        deadline = time.monotonic() + 10
        while _served_cert(webhook) == before:
            assert time.monotonic() < deadline, "new certificate was never served"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert len(successes) > 20
    assert ssl.DER_cert_to_PEM_cert(_served_cert(webhook)).strip() == (new / "tls.crt").read_text().strip()
    assert webhook.proc.poll() is None


def test_sigterm_finishes_the_request_in_flight(webhook):
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request(rollout())}).encode()
    conn = webhook.connect()
    conn.putrequest("POST", "/mutate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body[:100])
    time.sleep(0.3)
    webhook.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    conn.send(body[100:])
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["response"]["allowed"] is True
    assert webhook.proc.wait(15) == 0
    with pytest.raises(OSError):
        webhook.get("/healthz")


def test_bad_policy_file_is_a_one_line_error(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("analysis:\n  mode: sometimes\n")
    certs = make_certs(tmp_path / "c")
    result = subprocess.run(
        [*WEBHOOK, "serve", "--port", str(free_port()), "--tls-cert-file", str(certs / "tls.crt"),
         "--tls-private-key-file", str(certs / "tls.key"), "--policy-file", str(policy)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Error: --policy-file {policy}: spec.analysis.mode: expected inject-if-absent or always-append"
    ]


def test_policy_file_is_used(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("analysis:\n  templates: [strict-quality]\n")
    hook = Webhook(tmp_path, "--policy-file", str(policy))
    try:
        _, review = hook.review(request(rollout()))
        patch = json.loads(base64.b64decode(review["response"]["patch"]))
        steps = [op["value"] for op in patch if "/steps/" in op["path"]]
        assert steps[0]["analysis"]["templates"] == [{"templateName": "strict-quality", "clusterScope": True}]
    finally:
        hook.stop()
