#!/usr/bin/env python3
"""The probes of issue 10 against `agentroll-webhook serve` on loopback (prints figures; asserts
nothing): the largest Rollouts the API server could send, a stalled client, and /healthz latency
while the biggest request is decided.

    python benchmarks/webhook_hostile.py [--runs 5]

Peak RSS is the server's VmHWM after each probe (a fresh server per probe, so each peak is its own).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kubectl_agentroll.mutate import MAX_INSERTED_STEPS  # noqa: E402
from tests.unit.rollouts import request, rollout  # noqa: E402
from tests.unit.serverproc import Webhook  # noqa: E402

API_SERVER_LIMIT = 3 * 1024 * 1024  # the API server refuses larger request bodies


def review_body(steps: list[dict]) -> bytes:
    obj = rollout(strategy={"canary": {"steps": steps}})
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": request(obj)}, separators=(",", ":")).encode()


def fill(head: list[dict], filler: dict) -> bytes:
    """`head` then as many `filler` steps as fit under the API server's limit."""
    one = len(json.dumps(filler, separators=(",", ":"))) + 1
    count = (API_SERVER_LIMIT - 64 * 1024 - len(review_body(head))) // one
    return review_body(head + [filler] * count)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(hook: Webhook, body: bytes) -> tuple[float, int, int, dict]:
    conn = hook.connect()
    started = time.perf_counter()
    conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    return elapsed, response.status, len(data), json.loads(data)["response"]


def probe_body(name: str, body: bytes, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hook = Webhook(Path(tmp))
        try:
            baseline = peak_rss_mib(hook.proc.pid)
            times, health = [], []
            for _ in range(runs):
                done = threading.Event()

                def poll(done: threading.Event = done) -> None:
                    while not done.is_set():
                        t = time.perf_counter()
                        hook.get("/healthz")
                        health.append(time.perf_counter() - t)

                poller = threading.Thread(target=poll)
                poller.start()
                elapsed, status, size, response = post(hook, body)
                done.set()
                poller.join()
                times.append(elapsed)
            verdict = "patched" if response.get("patch") else (
                "allowed" if response["allowed"] else "denied")
            print(f"{name}: request {len(body) / 2**20:.2f} MiB -> HTTP {status}, {verdict}, "
                  f"response {size / 1024:.1f} KiB; latency median {statistics.median(times) * 1000:.0f} ms "
                  f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {runs} runs); "
                  f"/healthz meanwhile max {max(health) * 1000:.0f} ms; server peak RSS "
                  f"{peak_rss_mib(hook.proc.pid):.0f} MiB (idle {baseline:.0f} MiB)")
            if not response["allowed"]:
                print(f"  message: {response['status']['message']}")
        finally:
            hook.stop()


def probe_stall(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hook = Webhook(Path(tmp))
        try:
            head = b"POST /mutate HTTP/1.1\r\nHost: x\r\n"
            for what, data in (("headers never finish", head),
                               ("body stops after 10 bytes",
                                head + b"Content-Length: 1000\r\n\r\n0123456789"),
                               ("idle TLS connection, nothing sent", b"")):
                drops = []
                for _ in range(runs):
                    raw = socket.create_connection(("127.0.0.1", hook.port))
                    tls = hook.context().wrap_socket(raw, server_hostname="127.0.0.1")
                    tls.sendall(data)
                    started = time.perf_counter()
                    tls.settimeout(120)
                    tls.recv(1024)
                    drops.append(time.perf_counter() - started)
                    tls.close()
                after = post(hook, review_body([{"setWeight": 5}]))[1]
                print(f"stalled client ({what}): dropped after {statistics.median(drops):.2f} s "
                      f"(median of {runs}); valid request right after: HTTP {after}")
        finally:
            hook.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"MAX_INSERTED_STEPS = {MAX_INSERTED_STEPS}")
    probe_body("amplification (one-line setWeight steps, all below 100)",
               fill([], {"setWeight": 5}), args.runs)
    largest = [{"setWeight": 1 + i % 99} for i in range(MAX_INSERTED_STEPS)]
    probe_body(f"at the limit ({MAX_INSERTED_STEPS} gated steps, nothing else)",
               review_body(largest), args.runs)
    probe_body(f"largest admissible ({MAX_INSERTED_STEPS} gated steps + setWeight 100 filler)",
               fill(largest, {"setWeight": 100}), args.runs)
    probe_stall(max(1, args.runs // 2))


if __name__ == "__main__":
    main()
