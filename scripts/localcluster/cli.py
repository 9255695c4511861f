"""`scripts/local-cluster`: the command line. Errors are one line; AGENTROLL_DEBUG=1 shows tracebacks."""
from __future__ import annotations

import argparse
import os
import signal
import sys

from . import cluster, gobuild, prometheus, soak
from .config import ClusterError, cluster_dir

USAGE = """Local Kubernetes control plane for AgentRoll's tests and demo.

Everything runs as plain processes on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (fake nodes and pods), the Argo Rollouts controller and Prometheus. Binaries are
built from their Go modules with the local `go` and cached under
${AGENTROLL_CACHE:-~/.cache/agentroll}/bin/<component>/<version>/<go>/; versions are pinned in
scripts/versions.json. State (certificates, data, logs, pidfiles, kubeconfig) lives in
${AGENTROLL_CLUSTER_DIR:-<repo>/.local-cluster}.

examples:
  scripts/local-cluster up                  # build what is missing, start, print how to use it
  eval "$(scripts/local-cluster env)"       # KUBECONFIG, PATH, AGENTROLL_PROMETHEUS
  scripts/local-cluster scrape demo 127.0.0.1:9464 --label app=agent
  scripts/local-cluster soak                # hold pods Ready through two node heartbeat deadlines
  scripts/local-cluster heartbeat           # seconds until the Argo controller sees a Rollout change
  scripts/local-cluster restart argo-rollouts --dump   # goroutine stacks to its log, then start again
  scripts/local-cluster down
"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="local-cluster", description=USAGE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="build missing binaries into the cache")
    b.add_argument("components", nargs="*", metavar="COMPONENT",
                   help=f"any of {', '.join(gobuild.COMPONENTS)} (default: all)")
    sub.add_parser("up", help="build if needed and start everything (a running cluster is left as is)")
    sub.add_parser("down", help="stop every process `up` started; logs stay")
    sub.add_parser("status", help="components, pids, liveness, memory, ports (exit 3: not running)")
    sub.add_parser("env", help="print export lines for KUBECONFIG, PATH and AGENTROLL_PROMETHEUS")
    s = sub.add_parser("scrape", help="have Prometheus scrape http://ADDRESS/metrics (file SD)")
    s.add_argument("name", help="target name (replaces a target of that name)")
    s.add_argument("address", nargs="?", help="HOST:PORT; omit with --remove")
    s.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="a label on every series")
    s.add_argument("--remove", action="store_true", help="stop scraping NAME")
    r = sub.add_parser("restart", help="stop one component and start it again with its flags and ports "
                       "(its data stays)")
    r.add_argument("component", help="one of the names `status` lists")
    r.add_argument("--dump", action="store_true",
                   help="SIGQUIT it first: a Go component writes its goroutine stacks to its log")
    h = sub.add_parser("heartbeat", help="time how long the Argo controller takes to see a Rollout change")
    h.add_argument("--deadline", type=float, default=30, help="give up after this many seconds (exit 1)")
    k = sub.add_parser("soak", help="check pods stay Ready through two node heartbeat deadlines")
    k.add_argument("--seconds", type=float, help="how long to hold (default: two grace periods + 10 s)")
    return ap


def _scrape(args: argparse.Namespace) -> int:
    p = cluster.paths()
    p.make_dirs()
    if args.remove:
        if not prometheus.remove_target(p, args.name):
            raise ClusterError(f"no scrape target named {args.name!r}")
        return 0
    if not args.address:
        raise ClusterError("scrape: ADDRESS (HOST:PORT) is required unless --remove")
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClusterError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    prometheus.add_target(p, args.name, args.address, labels)
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "build": lambda: cluster.build(args.components or None),
        "up": cluster.up, "down": cluster.down, "status": cluster.status, "env": cluster.env,
        "scrape": lambda: _scrape(args), "soak": lambda: soak.run(args.seconds),
        "restart": lambda: cluster.restart(args.component, args.dump),
        "heartbeat": lambda: cluster.heartbeat_once(args.deadline),
    }
    try:
        if args.command in ("up", "down", "restart"):
            with gobuild.file_lock(cluster_dir() / ".lock", args.command):
                return commands[args.command]() or 0
        return commands[args.command]() or 0
    except ClusterError as e:
        print(f"local-cluster {args.command}: error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"local-cluster {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one-line contract; AGENTROLL_DEBUG=1 shows the traceback
        if os.environ.get("AGENTROLL_DEBUG"):
            raise
        print(f"local-cluster {args.command}: internal error: {type(e).__name__}: {e} "
              f"(logs: {cluster_dir() / 'logs'}; AGENTROLL_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


def run() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `local-cluster status | head` exits quietly
    sys.exit(main(sys.argv[1:]))
