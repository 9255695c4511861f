"""Start, track and stop the cluster's processes.

Each component runs in its own process group, recorded in a pidfile with its program path, so
`down` from another shell stops exactly what `up` started and never signals a process that merely
reused a pid.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .config import ClusterError, Paths, child_env

_CHILDREN: dict[str, subprocess.Popen] = {}  # comp -> Popen, when this process started it


def read_pidfile(p: Paths, comp: str) -> dict | None:
    try:
        return json.loads(p.pidfile(comp).read_text())
    except (OSError, ValueError):
        return None


def running(p: Paths) -> dict[str, dict]:
    """Every component with a pidfile, alive or not, by name."""
    out = {}
    for f in sorted(p.run.glob("*.json")) if p.run.is_dir() else []:
        info = read_pidfile(p, f.stem)
        if info:
            out[f.stem] = info
    return out


def _argv0(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def pid_alive(info: dict | None) -> bool:
    """Alive and still the same program (guards against pid reuse)."""
    if not info:
        return False
    pid = info.get("pid")
    proc = _CHILDREN.get(info.get("component", ""))
    if proc is not None and proc.pid == pid:
        # Our own child: its exit status is authoritative. /proc/PID/cmdline can read empty for a
        # moment after Popen returns, which would make a healthy process look dead.
        return proc.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        return False
    return _argv0(pid) == info.get("argv0")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids whose process group is pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[2]) == pgid and rest[0] != "Z":
            out.append(int(d))
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def start(p: Paths, comp: str, argv: list, ports: dict[str, int], env: dict | None = None) -> dict:
    logpath = p.component_log(comp)
    if logpath.exists():
        logpath.replace(logpath.with_suffix(".log.1"))
    with open(logpath, "w") as logf:
        logf.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(map(str, argv))}\n")
        logf.flush()
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=p.root, env=env or child_env(),
                                    start_new_session=True)
        except OSError as e:
            raise ClusterError(f"{comp}: cannot start {argv[0]}: {e}") from None
    _CHILDREN[comp] = proc
    info = {"component": comp, "pid": proc.pid, "pgid": proc.pid, "argv0": str(argv[0]),
            "ports": ports, "log": str(logpath), "started": time.time()}
    p.pidfile(comp).write_text(json.dumps(info, indent=1) + "\n")
    return info


def reap(comp: str) -> None:
    proc = _CHILDREN.get(comp)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0)


def _signal_group(pgid: int, sig: int, comp: str, wait: float) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        reap(comp)
        if not group_members(pgid):
            return
        time.sleep(0.1)


def quit_for_dump(p: Paths, comp: str, wait: float = 10.0) -> None:
    """SIGQUIT the component's process group: a Go program writes all goroutine stacks to stderr (its
    log) and exits. SIGCONT too, so a stopped one acts on it. Waits for it to be gone; `stop` deals
    with anything left."""
    info = read_pidfile(p, comp)
    if info:
        pgid = info.get("pgid") or info["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGQUIT)
        _signal_group(pgid, signal.SIGCONT, comp, wait)


def stop(p: Paths, comp: str, grace: float = 10.0) -> str | None:
    """SIGTERM the component's process group, SIGKILL after grace. Returns a problem or None."""
    info = read_pidfile(p, comp)
    if not info:
        return None
    pgid = info.get("pgid") or info["pid"]
    if not pid_alive(info) and not any(_argv0(m) == info.get("argv0") for m in group_members(pgid)):
        # leader gone and nothing of ours left in the group: never signal an unrelated group
        p.pidfile(comp).unlink(missing_ok=True)
        return None
    if group_members(pgid):
        _signal_group(pgid, signal.SIGTERM, comp, grace)
    if group_members(pgid):
        _signal_group(pgid, signal.SIGKILL, comp, 5)
    reap(comp)
    left = group_members(pgid)
    if left:
        return f"{comp}: processes {left} still alive after SIGKILL"
    p.pidfile(comp).unlink(missing_ok=True)
    return None


def stop_all(p: Paths, order: list[str]) -> list[str]:
    """Stop in reverse start order, then anything else with a pidfile; return the problems."""
    names = list(reversed(order)) + [c for c in running(p) if c not in order]
    return [msg for comp in names if (msg := stop(p, comp))]


def symlink(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
