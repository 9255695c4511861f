"""The cluster's lifecycle: up, down, status, and the soak self-check."""
from __future__ import annotations

import json
import time
from pathlib import Path

from . import gobuild, health, heartbeat, procs
from .components import COMPONENTS, FINAL_CHECK, ORDER, TOOLS, Context
from .config import ClusterError, Paths, cluster_dir, free_port, log
from .pki import CLIENTS, ensure_pki, write_kubeconfig


def paths() -> Paths:
    return Paths(cluster_dir())


def healthy(p: Paths) -> bool:
    infos = procs.running(p)
    if set(ORDER) - set(infos) or not all(procs.pid_alive(i) for i in infos.values()):
        return False
    if not p.kubeconfig.exists():
        return False
    api = infos["kube-apiserver"]["ports"]["apiserver"]
    ok, _ = health.http_ok(f"https://127.0.0.1:{api}/readyz", health.admin_ssl_context(p))
    return ok


def up() -> int:
    t0 = time.monotonic()
    p = paths()
    p.make_dirs()
    if healthy(p):
        log(f"already running ({p.root}); nothing to do")
        print_usage(p)
        return 0
    if procs.running(p):
        log("found a partial or stale cluster; stopping it first")
        problems = procs.stop_all(p, ORDER)
        if problems:
            raise ClusterError("; ".join(problems))
    bins = gobuild.ensure_built()
    health.mark_start()
    log(f"starting control plane in {p.root}")
    for link, (comp, binary) in TOOLS.items():
        procs.symlink(p.bin / link, bins[comp] / binary)
    (p.root / ".gitignore").write_text("*\n")
    ensure_pki(p)
    ctx = Context(p, bins, {port: free_port() for comp in COMPONENTS for port in comp.ports})
    write_kubeconfig(p.kubeconfig, p, ctx.ports["apiserver"], "admin")
    for user in CLIENTS:
        if user not in ("admin", "front-proxy-client"):
            write_kubeconfig(p.conf / f"{user}.kubeconfig", p, ctx.ports["apiserver"], user)
    try:
        pending = []
        for comp in COMPONENTS:
            if comp.prepare:
                comp.prepare(ctx)
            procs.symlink(p.bin / comp.name, Path(comp.argv(ctx)[0]))
            procs.start(p, comp.name, comp.argv(ctx), {k: ctx.ports[k] for k in comp.ports},
                        env=comp.env(ctx) if comp.env else None)
            pending.append(comp)
            if comp.wait_before_next:
                _wait(ctx, pending)
        _wait(ctx, pending)
        who, check, what = FINAL_CHECK
        health.wait_until(who, p, check(ctx), 60, what)
    except BaseException as e:
        problems = procs.stop_all(p, ORDER)
        if isinstance(e, ClusterError) and problems:
            raise ClusterError(f"{e} (and cleanup: {'; '.join(problems)})") from None
        raise
    log(f"cluster up in {time.monotonic() - t0:.1f}s ({p.root})")
    print_usage(p)
    return 0


def _wait(ctx: Context, pending: list) -> None:
    while pending:
        comp = pending.pop(0)
        health.wait_until(comp.name, ctx.paths, comp.ready(ctx), comp.timeout, comp.ready_what)


def restart(name: str, dump: bool = False) -> int:
    """Stop one component and start it again with the flags and ports it had; its data stays (no
    `prepare`: that would empty etcd's or Prometheus's). With dump, it is first sent SIGQUIT, on
    which a Go program writes every goroutine's stack to its log (kept as <name>.log.1) and exits."""
    by_name = {comp.name: comp for comp in COMPONENTS}
    if name not in by_name:
        raise ClusterError(f"unknown component {name!r}; expected one of {', '.join(ORDER)}")
    p = paths()
    infos = procs.running(p)
    if name not in infos:
        raise ClusterError(f"{name} is not running here ({p.root}); start the cluster with `up`")
    comp = by_name[name]
    ports = {key: port for info in infos.values() for key, port in info.get("ports", {}).items()}
    ctx = Context(p, gobuild.ensure_built(), ports)
    if dump and procs.pid_alive(infos[name]):
        procs.quit_for_dump(p, name)
    problem = procs.stop(p, name)
    if problem:
        raise ClusterError(problem)
    procs.start(p, name, comp.argv(ctx), {k: ports[k] for k in comp.ports},
                env=comp.env(ctx) if comp.env else None)
    health.wait_until(name, p, comp.ready(ctx), comp.timeout, comp.ready_what)
    log(f"{name} restarted" + (f" (goroutine dump: {p.component_log(name).with_suffix('.log.1')})"
                               if dump else ""))
    return 0


def heartbeat_once(deadline: float) -> int:
    p = paths()
    heart = heartbeat.Heartbeat(p, p.bin / "kubectl")
    heart.ensure()
    beat = heart.beat(deadline)
    if beat.error:
        raise ClusterError(beat.error)
    if beat.seconds is None:
        raise ClusterError(f"the Argo controller did not observe a Rollout change within {deadline:.0f} s "
                           "(try `restart argo-rollouts --dump`)")
    print(f"the Argo controller observed a Rollout change in {beat.seconds:.2f} s")
    return 0


def print_usage(p: Paths) -> None:
    prom = procs.read_pidfile(p, "prometheus")
    prom_line = f"  Prometheus: http://127.0.0.1:{prom['ports']['prometheus']}\n" if prom else ""
    print(f"\n  export KUBECONFIG={p.kubeconfig}\n"
          f"  export PATH={p.bin}:$PATH   # kubectl, helm of the same release\n"
          f"  {p.bin / 'kubectl'} get nodes\n{prom_line}  stop with: scripts/local-cluster down\n",
          flush=True)


def down() -> int:
    p = paths()
    if not procs.running(p):
        log(f"nothing running ({p.root})")
        return 0
    problems = procs.stop_all(p, ORDER)
    if problems:
        raise ClusterError("; ".join(problems))
    log(f"stopped; logs kept in {p.logs}")
    return 0


def status() -> int:
    p = paths()
    infos = procs.running(p)
    if not infos:
        print(f"not running ({p.root})")
        return 3
    print(f"{'COMPONENT':<24} {'PID':>7}  {'ALIVE':<5}  {'RSS':>8}  PORTS")
    all_alive = True
    total_rss = 0
    for comp in ORDER + [c for c in infos if c not in ORDER]:
        info = infos.get(comp)
        if not info:
            print(f"{comp:<24} {'-':>7}  {'no':<5}  {'-':>8}  -")
            all_alive = False
            continue
        alive = procs.pid_alive(info)
        all_alive &= alive
        members = procs.group_members(info.get("pgid") or info["pid"]) if alive else []
        rss = sum(procs.rss_kib(pid) for pid in members)
        total_rss += rss
        ports = ", ".join(f"{k}={v}" for k, v in info.get("ports", {}).items())
        print(f"{comp:<24} {info['pid']:>7}  {'yes' if alive else 'NO':<5}  {rss / 1024:>6.0f}Mi  {ports}")
    print(f"{'total':<24} {'':>7}  {'':<5}  {total_rss / 1024:>6.0f}Mi")
    print(f"kubeconfig: {p.kubeconfig}")
    return 0 if all_alive else 1


def env() -> int:
    p = paths()
    print(f"export KUBECONFIG={p.kubeconfig}")
    print(f"export PATH={p.bin}:$PATH")
    prom = procs.read_pidfile(p, "prometheus")
    if prom:
        print(f"export AGENTROLL_PROMETHEUS=http://127.0.0.1:{prom['ports']['prometheus']}")
    return 0


def build(components: list[str] | None = None) -> int:
    unknown = sorted(set(components or []) - set(gobuild.COMPONENTS))
    if unknown:
        raise ClusterError(f"unknown component {unknown[0]!r}; "
                           f"expected one of {', '.join(gobuild.COMPONENTS)}")
    for comp, d in gobuild.ensure_built(components).items():
        log(f"{comp}: {d}")
    return 0


def prometheus_url(p: Paths) -> str:
    info = procs.read_pidfile(p, "prometheus")
    if not info:
        raise ClusterError(f"Prometheus is not running in {p.root}; run `scripts/local-cluster up`")
    return f"http://127.0.0.1:{info['ports']['prometheus']}"


def kubectl_json(p: Paths, *args: str) -> dict:
    kubectl = p.bin / "kubectl"
    return json.loads(health.kubectl_run(p, kubectl, [*args, "-o", "json"], timeout=20))
