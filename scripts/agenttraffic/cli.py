"""`scripts/agent-traffic`: follow Rollouts, generate tasks, serve /metrics."""
from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from . import exposition, scenario, simulate, split
from .follow import Follower, FollowError

DESCRIPTION = """Agent traffic for the local control plane: follows Argo Rollouts, splits
--tasks-per-minute between each Rollout's stable and canary pods by the weight Argo has set,
simulates every task with the quality the scenario gives that pod's version, and serves the agent
metrics contract on http://LISTEN/metrics for Prometheus (plus /state as JSON and /healthz).

A scenario file (YAML) keys quality by composite-version layer:

  default: {hallucination: 0.05, completion: 0.90, tool_success: 0.97, cost: 0.02, cost_cv: 1.0}
  versions:
    - match: {prompt-version: support-v9}
      hallucination: 0.12
      tool_correlation: 0.3

fields: hallucination, completion, tool_success, tool_calls (mean per task), tool_correlation
(failures cluster within a task, 0..1), cost (mean USD), cost_cv, evaluated (share of tasks judged).

examples:
  scripts/agent-traffic --rollout agents/support-agent --tasks-per-minute 600 --scenario s.yaml
  scripts/agent-traffic --rollout a/x --rollout b/y --listen 127.0.0.1:9464 --seed 7
"""


class Generator:
    """The state: one set of counters per pod, updated every tick from the current split."""

    def __init__(self, rollouts: list[tuple[str, str]], plan: scenario.Scenario,
                 tasks_per_minute: float, seed: int, follower: Follower):
        self.rollouts, self.plan, self.rate = rollouts, plan, tasks_per_minute
        self.rng = random.Random(seed)
        self.follower = follower
        self.series: dict[tuple[str, str], exposition.PodSeries] = {}
        self.splits: dict[tuple[str, str], split.Split] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.errors: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()

    def poll(self) -> None:
        for ns, name in self.rollouts:
            try:
                rollout, pods = self.follower.read(ns, name)
            except FollowError as e:
                if self.errors.get((ns, name)) != str(e):
                    print(f"agent-traffic: {e}", file=sys.stderr, flush=True)
                self.errors[(ns, name)] = str(e)
                continue
            self.errors.pop((ns, name), None)
            with self.lock:
                self._update(ns, name, rollout, pods)

    def _update(self, ns: str, name: str, rollout: dict, pods: list[dict]) -> None:
        current = split.split(rollout, pods)
        self.splits[(ns, name)] = current
        alive = set()
        for pod in pods:
            key = (ns, pod["metadata"]["name"])
            alive.add(key)
            self.pods[key] = pod
            if key not in self.series and key[1] in current.shares:
                labels = pod["metadata"].get("labels") or {}
                tools = (pod["metadata"].get("annotations") or {}).get("agentroll.dev/tools", "")
                names = tuple(t.rpartition("@")[0] or t for t in map(str.strip, tools.split(",")) if t)
                self.series[key] = exposition.PodSeries(
                    ns, key[1], name, labels.get(split.HASH_LABEL, ""),
                    labels.get("agentroll.dev/composite-version", "unset"),
                    simulate.PodCounters(tools=names or ("tool",)))
        gone = [k for k, s in self.series.items() if k[0] == ns and s.rollout == name and k not in alive]
        for key in gone:
            del self.series[key]  # the pod is gone, and its series with it
            self.pods.pop(key, None)

    def tick(self, seconds: float) -> None:
        with self.lock:
            for (ns, _), current in self.splits.items():
                pods = [p for p in current.shares if (ns, p) in self.series]
                if not pods:
                    continue
                n = simulate.poisson(self.rng, self.rate / 60 * seconds)
                weights = [current.shares[p] for p in pods]
                for pod, k in zip(pods, _multinomial(self.rng, n, weights), strict=True):
                    if k:
                        q = self.plan.quality_for(scenario.pod_layers(self.pods[(ns, pod)]))
                        simulate.run_tasks(self.rng, q, k, self.series[(ns, pod)].counters)

    def metrics(self) -> str:
        with self.lock:
            return exposition.render(self.series.values())

    def state(self) -> dict:
        with self.lock:
            out = {}
            for (ns, name), s in self.splits.items():
                versions: dict[str, dict] = {}
                for series in self.series.values():
                    if series.namespace == ns and series.rollout == name:
                        v = versions.setdefault(series.pod_template_hash, {"tasks": 0, "pods": 0})
                        v["tasks"] += series.counters.task_count
                        v["pods"] += 1
                out[f"{ns}/{name}"] = {"stable": s.stable_hash, "canary": s.canary_hash,
                                       "canary_weight": s.canary_weight, "shares": s.shares,
                                       "versions": versions, "error": self.errors.get((ns, name))}
            return out


def _multinomial(rng: random.Random, n: int, weights: list[float]) -> list[int]:
    counts = [0] * len(weights)
    for i in rng.choices(range(len(weights)), weights=weights, k=n):
        counts[i] += 1
    return counts


def _handler(gen: Generator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                body, kind = gen.metrics().encode(), "text/plain; version=0.0.4"
            elif self.path == "/state":
                body, kind = json.dumps(gen.state()).encode(), "application/json"
            elif self.path == "/healthz":
                body, kind = b"ok\n", "text/plain"
            else:
                self.send_error(404, "try /metrics, /state or /healthz")
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _rollout_ref(value: str) -> tuple[str, str]:
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAMESPACE/NAME")
    return ns, name


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT (port 0 picks a free one)")
    return host or "127.0.0.1", int(port)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="agent-traffic", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollout", type=_rollout_ref, action="append", required=True, metavar="NS/NAME",
                    help="a Rollout to generate traffic for (repeatable)")
    ap.add_argument("--tasks-per-minute", type=float, default=600,
                    help="tasks per Rollout (default 600)")
    ap.add_argument("--scenario", type=Path,
                    help="quality per version (YAML; default: every version healthy)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), metavar="HOST:PORT",
                    help="where to serve /metrics (default 127.0.0.1:0, a free port, printed)")
    ap.add_argument("--port-file", type=Path, help="write the port served on to this file")
    ap.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    ap.add_argument("--context", help="kubeconfig context")
    ap.add_argument("--tick", type=float, default=0.25, help="seconds between task batches (default 0.25)")
    ap.add_argument("--poll", type=float, default=0.5,
                    help="seconds between reads of the Rollouts (default 0.5)")
    return ap


def load_scenario(path: Path | None) -> scenario.Scenario:
    if path is None:
        return scenario.parse({})
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise scenario.ScenarioError(f"--scenario {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise scenario.ScenarioError(f"--scenario {path}: not YAML ({str(e).splitlines()[0]})") from None
    return scenario.parse(data)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.tasks_per_minute < 0 or args.tick <= 0 or args.poll <= 0:
        print("agent-traffic: --tasks-per-minute must be >= 0, --tick and --poll > 0", file=sys.stderr)
        return 2
    try:
        plan = load_scenario(args.scenario)
        gen = Generator(args.rollout, plan, args.tasks_per_minute, args.seed,
                        Follower(args.kubeconfig, args.context))
    except (scenario.ScenarioError, FollowError) as e:
        print(f"agent-traffic: {e}", file=sys.stderr)
        return 2
    try:
        server = ThreadingHTTPServer(args.listen, _handler(gen))
    except OSError as e:
        print(f"agent-traffic: cannot listen on {args.listen[0]}:{args.listen[1]}: {e.strerror}",
              file=sys.stderr)
        return 2
    port = server.server_address[1]
    if args.port_file:
        args.port_file.write_text(f"{port}\n")
    print(f"agent-traffic: serving http://{args.listen[0]}:{port}/metrics for "
          f"{', '.join(f'{ns}/{n}' for ns, n in args.rollout)} at {args.tasks_per_minute:g} tasks/min",
          flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    last_tick = last_poll = time.monotonic()
    gen.poll()
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now - last_poll >= args.poll:
                gen.poll()
                last_poll = now
            gen.tick(now - last_tick)
            last_tick = now
            stop.wait(args.tick)
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


def run() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
