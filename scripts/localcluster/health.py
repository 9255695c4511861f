"""Readiness: HTTP probes, kubectl queries and waiting for a condition with a one-line failure."""
from __future__ import annotations

import contextlib
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import procs
from .config import ClusterError, Paths, child_env, log

Check = Callable[[], tuple[bool, str]]
_STARTED = time.monotonic()


def http_ok(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[bool, str]:
    handlers: list = [urllib.request.ProxyHandler({})]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as r:
            return r.status == 200, r.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as e:
        body = ""
        with contextlib.suppress(Exception):
            body = e.read(2000).decode(errors="replace")
        return False, f"HTTP {e.code}: {body}"
    except (OSError, ssl.SSLError) as e:
        return False, str(e)


def admin_ssl_context(p: Paths) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(p.pki / "ca.crt"))
    ctx.load_cert_chain(str(p.pki / "admin.crt"), str(p.pki / "admin.key"))
    return ctx


def insecure_ssl_context() -> ssl.SSLContext:
    """kcm and the scheduler serve a self-signed certificate on loopback; /healthz is always allowed."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def mark_start() -> None:
    global _STARTED
    _STARTED = time.monotonic()


def wait_until(comp: str, p: Paths, check: Check, timeout: float, what: str) -> None:
    """Poll check() until it holds; fail at once if the component's process has exited."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        info = procs.read_pidfile(p, comp)
        if info and not procs.pid_alive(info):
            procs.reap(comp)
            raise ClusterError(f"{comp} exited during startup; see {p.component_log(comp)}")
        ok, last = check()
        if ok:
            log(f"  {comp}: {what} (t+{time.monotonic() - _STARTED:.1f}s)")
            return
        time.sleep(0.2)
    raise ClusterError(f"{comp} not {what} after {timeout:.0f}s ({last.strip()[:150]}); "
                       f"see {p.component_log(comp)}")


def kubectl_run(p: Paths, kubectl: Path, args: list[str], input: str | None = None,
                timeout: float = 60) -> str:
    env = child_env()
    env["KUBECONFIG"] = str(p.kubeconfig)
    where = p.component_log("kube-apiserver")
    try:
        r = subprocess.run([str(kubectl), *args], input=input, capture_output=True, text=True,
                           env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`kubectl {' '.join(args[:3])}` timed out; see {where}") from None
    if r.returncode != 0:
        err = (r.stderr or r.stdout).strip().splitlines()
        raise ClusterError(f"`kubectl {' '.join(args[:3])}` failed: {err[-1] if err else r.returncode}; "
                           f"see {where}")
    return r.stdout


def kubectl_check(p: Paths, kubectl: Path, args: list[str],
                  judge: Callable[[str], tuple[bool, str]]) -> Check:
    """A Check that runs kubectl and judges its output; kubectl errors count as not ready yet."""
    def check() -> tuple[bool, str]:
        try:
            return judge(kubectl_run(p, kubectl, args, timeout=10))
        except ClusterError as e:
            return False, str(e)
    return check


def count_true(out: str, n: int, what: str) -> tuple[bool, str]:
    ok = out.split().count("True")
    return ok >= n, f"{ok}/{n} {what}"
