"""The webhook as a separate process on loopback, with certificates from `agentroll-webhook certs`."""

from __future__ import annotations

import http.client
import json
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

WEBHOOK = [sys.executable, "-m", "webhook"]


def make_certs(out_dir: Path) -> Path:
    subprocess.run(
        [*WEBHOOK, "certs", "--out-dir", str(out_dir), "--ip", "127.0.0.1", "--dns-name", "localhost"],
        check=True, capture_output=True,
    )
    return out_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook:
    def __init__(self, tmp: Path, *extra: str, nofile: int | None = None) -> None:
        self.tmp = tmp
        self.certs = tmp / "certs"
        if not (self.certs / "tls.crt").exists():
            make_certs(self.certs)
        self.port = free_port()
        self.log = open(tmp / "webhook.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*WEBHOOK, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--tls-cert-file", str(self.certs / "tls.crt"),
             "--tls-private-key-file", str(self.certs / "tls.key"),
             "--cert-check-interval", "0.2", *extra],
            stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
            if nofile else None,
        )
        self.ca_files = [self.certs / "ca.crt"]
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, "webhook did not start: " + self.output()
            time.sleep(0.05)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        for ca in self.ca_files:
            ctx.load_verify_locations(ca)
        return ctx

    def connect(self, ctx=None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx or self.context(), timeout=10)

    def send(self, method: str, path: str, body: bytes | None = None, conn=None):
        conn = conn or self.connect()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()

    def get(self, path: str):
        return self.send("GET", path)

    def review(self, req: dict, conn=None):
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
        status, data = self.send("POST", "/mutate", body.encode(), conn)
        return status, json.loads(data) if status == 200 else data

    def output(self) -> str:
        self.log.flush()
        return (self.tmp / "webhook.log").read_text()

    def logged(self, text: str, timeout: float = 5.0) -> str:
        """The log once it holds `text`: a response's line is written after its last byte is sent."""
        deadline = time.monotonic() + timeout
        while text not in (out := self.output()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
