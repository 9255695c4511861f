#!/usr/bin/env python3
"""Load benchmark of the admission webhook (prints figures; asserts nothing).

Drives `agentroll-webhook serve` over HTTPS keep-alive at a fixed concurrency with a realistic
agent Rollout, and in the same run a minimal aiohttp server that only parses the review and
answers `allowed` (parsing with the same JSON library as the webhook): the gap between the two is
what AgentRoll itself costs. Both servers run as
separate processes with certificates from `agentroll-webhook certs`; the client is this process.

    python benchmarks/webhook_load.py [--requests 20000] [--concurrency 8]

Targets (issue 2): throughput ratio >= 0.8 and p99 <= 5 ms on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.unit.rollouts import request, rollout  # noqa: E402

MINIMAL_SERVER = textwrap.dedent(
    """
    import json, ssl, sys
    import orjson
    from aiohttp import web

    async def mutate(req):
        review = orjson.loads(await req.read())
        uid = review["request"]["uid"]
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                  "response": {"uid": uid, "allowed": True}})

    async def healthz(_):
        return web.Response(text="ok")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    app = web.Application(client_max_size=7 * 1024 * 1024)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=ctx, access_log=None,
                print=None)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def realistic_review() -> bytes:
    obj = rollout()
    obj["metadata"]["labels"] = {"app.kubernetes.io/name": "support-agent", "team": "support"}
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(obj)
    pod = obj["spec"]["template"]["spec"]
    pod["containers"][0].update(
        ports=[{"name": "http", "containerPort": 8080}],
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}},
        env=[*pod["containers"][0]["env"], *({"name": f"FEATURE_{i}", "value": "on"} for i in range(12))],
    )
    pod["containers"].append({"name": "otel", "image": "otel/opentelemetry-collector-contrib:0.110.0"})
    req = request(obj)
    req["userInfo"] = {"username": "system:serviceaccount:argocd:argocd-application-controller"}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}
    return json.dumps(review).encode()


async def wait_ready(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                async with session.get(url + "/healthz", ssl=ctx) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not become healthy")
            await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(url: str, ctx: ssl.SSLContext, body: bytes, total: int, concurrency: int,
                pid: int) -> dict:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ctx, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = total

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url + "/mutate", data=body,
                                        headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        warmup = [session.post(url + "/mutate", data=body) for _ in range(concurrency)]
        for coro in warmup:
            async with coro as resp:
                await resp.read()
        started, cpu_before = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu_us": cpu / len(latencies) * 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds, alternating the two servers; the median round is reported.")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="agentroll-bench-"))
    subprocess.run([sys.executable, "-m", "webhook", "certs", "--out-dir", str(tmp), "--ip", "127.0.0.1"],
                   check=True, capture_output=True, cwd=REPO)
    ctx = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
    cert, key = str(tmp / "tls.crt"), str(tmp / "tls.key")
    body = realistic_review()

    servers = {}
    port = free_port()
    servers["agentroll"] = (port, subprocess.Popen(
        [sys.executable, "-m", "webhook", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tls-cert-file", cert, "--tls-private-key-file", key],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    port = free_port()
    (tmp / "minimal.py").write_text(MINIMAL_SERVER)
    servers["minimal"] = (port, subprocess.Popen(
        [sys.executable, str(tmp / "minimal.py"), str(port), cert, key],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    rounds: dict[str, list[dict]] = {name: [] for name in servers}
    try:
        for port, proc in servers.values():
            await wait_ready(f"https://127.0.0.1:{port}", ctx, proc)
        for _ in range(args.rounds):
            for name, (port, proc) in servers.items():
                rounds[name].append(await drive(f"https://127.0.0.1:{port}", ctx, body,
                                                args.requests, args.concurrency, proc.pid))
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(10)

    results = {name: sorted(rs, key=lambda r: r["req_per_s"])[len(rs) // 2] for name, rs in rounds.items()}
    print(f"review body: {len(body)} bytes, {args.requests} requests x {args.rounds} rounds, "
          f"concurrency {args.concurrency}, HTTPS keep-alive; median round shown")
    print(f"{'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'errors':>7}")
    for name, r in results.items():
        print(f"{name:<10} {r['req_per_s']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['cpu_us']:>11.0f} {r['errors']:>7}")
    ratio = results["agentroll"]["req_per_s"] / results["minimal"]["req_per_s"]
    print(f"throughput ratio agentroll/minimal: {ratio:.2f} (target >= 0.8); "
          f"agentroll p99 {results['agentroll']['p99_ms']:.2f} ms (target <= 5 ms)")


if __name__ == "__main__":
    asyncio.run(main())
