#!/usr/bin/env python3
"""Benchmark: `kubectl agentroll status` against `kubectl get rollout -o json` and, side by side, the
Argo Rollouts plugin `kubectl argo rollouts` (a script, not a test).

Against the local control plane of scripts/local-cluster (start it first: `scripts/local-cluster up`):

1. wall time of `kubectl-agentroll status NAME` vs `kubectl get rollout NAME -o json`, the median
   of --runs runs each, alternated run by run, after one warm-up run each (target: ratio <= 2.0);
2. wall time of `kubectl-agentroll status -A` with --count opted-in Rollouts (replicas 0) in the
   cluster (target: < 2 s), alternated with `kubectl get rollouts -A -o json` for reference;
3. with the Argo plugin at <cluster dir>/bin/kubectl-argo-rollouts (or --argo): `status NAME` vs
   `get rollout NAME` and `status -A` vs `list rollouts -A`, alternated run by run, and the CPU
   seconds of `status NAME -w` vs `get rollout NAME -w` over --idle seconds of an idle Rollout and
   over three whole canaries (each a new revision, promoted to the end). Target: ours at most the Argo
   plugin's on every row.

    python benchmarks/status_bench.py [--runs 15] [--count 1000] [--keep] [--plugin PATH]

`kubectl-agentroll` is what a user runs: the project installed from a wheel into a venv of its own
(<cluster dir>/bench-venv, made anew each run), not the checkout's editable install, whose import
hook (a `.pth` finder that loads pathlib and importlib.util) adds ~12 ms to every start.

The Rollouts are created through the API directly, 16 at a time, and left to the Argo controller
(it makes one empty ReplicaSet each); the namespaces are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubectl_agentroll.actions import argo_promote_patch  # noqa: E402
from kubectl_agentroll.composite import CompositeVersion, parse_tools  # noqa: E402
from kubectl_agentroll.kube import KubeError  # noqa: E402
from kubectl_agentroll.kubeconfig import Flags, load_target  # noqa: E402
from kubectl_agentroll.rest import Rest  # noqa: E402
from kubectl_agentroll.status import settled  # noqa: E402
from kubectl_agentroll.transport import MERGE_PATCH, ROLLOUTS, path  # noqa: E402

ONE_NS, MANY_NS = "bench-agentroll-one", "bench-agentroll-many"


def rollout(name: str, prompt: str, replicas: int) -> dict:
    version = CompositeVersion(prompt=prompt, model="claude-sonnet-4",
                               tools=parse_tools("crm@1.2.0"), image="registry.invalid/agent:1.0")
    labels = {"app": name, **version.labels()}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "labels": labels, "annotations": {"agentroll.dev/inject": "true"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels, "annotations": version.annotations()},
                         "spec": {"containers": [{"name": "agent", "image": version.image}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
    }


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}...: exit {r.returncode}: {r.stderr.decode().strip()}")
    return elapsed


def median_of(cmd: list[str], env: dict, runs: int) -> float:
    timed(cmd, env)  # warm-up (kubectl's discovery cache, the page cache)
    return statistics.median(timed(cmd, env) for _ in range(runs))


def paired(a: list[str], b: list[str], env: dict, runs: int) -> tuple[float, float]:
    """Medians of two commands run in turn (a b a b ...), after one warm-up each."""
    timed(a, env)
    timed(b, env)
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(timed(a, env))
        times_b.append(timed(b, env))
    return statistics.median(times_a), statistics.median(times_b)


def watch_cpu(cmd: list[str], env: dict, seconds: float | None, during=None) -> float:
    """CPU seconds (user + system) a watching command uses: for `seconds`, or while `during()` runs."""
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(2)  # started and drawn: what follows is the watching
    start = _cpu_of(proc.pid)
    if during is not None:
        during()
    else:
        time.sleep(seconds)
    used = _cpu_of(proc.pid) - start
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return used


def _cpu_of(pid: int) -> float:
    """CPU seconds of the process's threads, from each one's schedstat (nanoseconds): utime and stime
    in /proc/PID/stat come in 10 ms ticks, too coarse for totals of ~50 ms. A thread that ends inside
    the window would be missed; neither command starts or ends threads while it watches."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def one_canary(api: Rest, name: str, prompt: str) -> None:
    """A new revision of `name`, promoted step by step by the controller to Healthy."""
    body = {"spec": {"template": {"metadata": {"annotations": {"bench/prompt": prompt}}}}}
    patched = api.request("PATCH", path(ROLLOUTS, ONE_NS, name), what=name, body=body,
                          content_type=MERGE_PATCH)
    generation = int(patched["metadata"]["generation"])

    def healthy() -> bool:
        ro = api.request("GET", path(ROLLOUTS, ONE_NS, name), what=name)
        st = ro.get("status") or {}
        if int(st.get("observedGeneration") or 0) < generation:
            return False  # the status still describes the revision before the patch
        # At the pause step: the step promote (`promoteFull` can be left true by the revision
        # before, and setting it again then changes nothing the controller would see).
        step = argo_promote_patch(ro).status
        if st.get("phase") == "Paused" and step:
            api.request("PATCH", path(ROLLOUTS, ONE_NS, name, "status"), what=name,
                        body=step, content_type=MERGE_PATCH)
        return st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash")

    wait_for(f"{name} promoted", healthy, 120)


def terminating(api: Rest, name: str) -> bool:
    try:
        ns = api.request("GET", f"/api/v1/namespaces/{name}", what=f"namespace {name}")
    except KubeError as err:
        if err.status == 404:
            return False
        raise
    return (ns.get("status") or {}).get("phase") == "Terminating"


def deleted(api: Rest, name: str) -> None:
    """Wait out the deletion of a previous run's namespace: deleting 1,000 Rollouts and their
    ReplicaSets keeps the API server and the controller-manager busy for minutes, and a figure taken
    meanwhile is the machine's, not the command's (`status NAME` read 158 ms in such a run, 126 ms
    in the run before)."""
    wait_for(f"namespace {name} from a previous run to be deleted", lambda: not terminating(api, name), 600)


def ensure_namespace(api: Rest, name: str) -> None:
    """Create the namespace, first waiting out the deletion of a previous run's."""
    deleted(api, name)
    try:
        api.request("POST", "/api/v1/namespaces", what=f"namespace {name}",
                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    content_type="application/json")
    except KubeError as err:
        if err.status != 409:
            raise


def create(target, namespace: str, objects: list[dict]) -> None:
    def post(batch: list[dict]) -> None:
        api = Rest(target)
        for obj in batch:
            try:
                api.request("POST", path(ROLLOUTS, namespace), what=obj["metadata"]["name"], body=obj,
                            content_type="application/json")
            except KubeError as err:
                if err.status != 409:
                    raise
        api.close()

    batches = [objects[i::16] for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(post, batches))


def installed_plugin(venv: Path) -> str:
    """`kubectl-agentroll` from a wheel of this checkout in a fresh venv: the executable users get."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(REPO)], check=True)
    return str(venv / "bin" / "kubectl-agentroll")


def wait_for(what: str, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cluster = Path(os.environ.get("AGENTROLL_CLUSTER_DIR") or REPO / ".local-cluster")
    parser.add_argument("--kubeconfig", default=str(cluster / "kubeconfig"))
    parser.add_argument("--kubectl", default=str(cluster / "bin" / "kubectl"))
    parser.add_argument("--argo", default=str(cluster / "bin" / "kubectl-argo-rollouts"))
    parser.add_argument("--idle", type=float, default=30, help="seconds of idle watching measured")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark namespaces")
    parser.add_argument("--plugin", help="the kubectl-agentroll to time (default: this checkout, "
                        "installed from a wheel into <cluster dir>/bench-venv)")
    args = parser.parse_args()

    plugin = args.plugin or installed_plugin(cluster / "bench-venv")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["KUBECONFIG"] = args.kubeconfig
    target = load_target(Flags(kubeconfig=args.kubeconfig))
    api = Rest(target)

    print(f"API server {target.server}; kubectl {args.kubectl}; {plugin}; {args.runs} runs each (median)")
    deleted(api, MANY_NS)
    ensure_namespace(api, ONE_NS)
    create(target, ONE_NS, [rollout("bench-one", "p1", 1)])

    def reconciled_one() -> bool:
        ro = api.request("GET", path(ROLLOUTS, ONE_NS, "bench-one"), what="bench-one")
        return bool((ro.get("status") or {}).get("stableRS"))

    wait_for("bench-one reconciled (is the Argo Rollouts controller running?)", reconciled_one, 120)

    get_one = [args.kubectl, "get", "rollout", "bench-one", "-n", ONE_NS, "-o", "json"]
    ours, kubectl = paired([plugin, "status", "bench-one", "-n", ONE_NS], get_one, env, args.runs)
    print(f"kubectl get rollout NAME -o json   {kubectl * 1000:7.0f} ms")
    print(f"kubectl-agentroll status NAME       {ours * 1000:7.0f} ms   "
          f"ratio {ours / kubectl:.2f} (target <= 2.0)")
    interpreter = median_of([str(Path(plugin).with_name("python")), "-c", "pass"], env, args.runs)
    print(f"python -c pass (interpreter floor)  {interpreter * 1000:7.0f} ms")
    modules = ("kubectl_agentroll.cli", "kubectl_agentroll.commands.status")  # what `status` imports first
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {', '.join(modules)}"],
                             capture_output=True, text=True, env=env).stderr.strip().splitlines()
    cumulative = sum(int(line.split("|")[1]) for line in imports if line.split("|")[-1].strip() in modules)
    print(f"import cli + commands.status        {cumulative / 1000:7.0f} ms "
          "(python -X importtime, cumulative)")

    argo = args.argo if Path(args.argo).exists() else None
    if argo is None:
        print(f"Argo plugin rows skipped: {args.argo} does not exist (give --argo PATH)")
    else:
        ns = ["-n", ONE_NS]
        mine, theirs = paired([plugin, "status", "bench-one", *ns],
                              [argo, "get", "rollout", "bench-one", *ns], env, args.runs)
        print(f"status NAME {mine * 1000:.0f} ms vs argo get rollout NAME {theirs * 1000:.0f} ms "
              f"(ratio {mine / theirs:.2f}, target <= 1)")
        watch_ours = [plugin, "status", "bench-one", "-w", *ns]
        watch_argo = [argo, "get", "rollout", "bench-one", "-w", *ns]
        idle = [watch_cpu(cmd, env, args.idle) for cmd in (watch_ours, watch_argo)]
        print(f"-w CPU over {args.idle:.0f} s idle: ours {idle[0] * 1000:.1f} ms, "
              f"argo {idle[1] * 1000:.1f} ms")
        busy = [watch_cpu(cmd, env, None, lambda who=who: [one_canary(api, "bench-one", f"{who}{i}")
                                                            for i in range(3)])
                for cmd, who in ((watch_ours, "ours"), (watch_argo, "argo"))]
        print(f"-w CPU over three canaries (new revision -> Healthy, each): ours {busy[0] * 1000:.0f} ms, "
              f"argo {busy[1] * 1000:.0f} ms")

    if args.count <= 0:
        cleanup(api, args.keep, ONE_NS)
        return
    ensure_namespace(api, MANY_NS)
    start = time.perf_counter()
    create(target, MANY_NS, [rollout(f"agent-{i:04d}", f"p{i % 7}", 0) for i in range(args.count)])
    print(f"created {args.count} Rollouts in {time.perf_counter() - start:.1f} s")

    def reconciled() -> bool:
        rollouts = api.request("GET", path(ROLLOUTS, MANY_NS), what="rollouts").get("items") or []
        return sum(settled(r) for r in rollouts) >= args.count

    start = time.perf_counter()
    wait_for(f"{args.count} Rollouts Healthy with their ReplicaSets", reconciled, 900)
    took = time.perf_counter() - start
    print(f"the controller made their ReplicaSets and called them Healthy in {took:.1f} s "
          "(a cluster at rest: `status -A` then reads no ReplicaSets; each Rollout mid-update adds its two "
          "to one more list)")

    runs = max(5, args.runs // 3)
    if argo is not None:
        mine, theirs = paired([plugin, "status", "-A"], [argo, "list", "rollouts", "-A"], env, runs)
        print(f"status -A {mine * 1000:.0f} ms vs argo list rollouts -A {theirs * 1000:.0f} ms "
              f"at {args.count} Rollouts (ratio {mine / theirs:.2f}, target <= 1)")
    get_all = [args.kubectl, "get", "rollouts", "-A", "-o", "json"]
    everything, listing = paired([plugin, "status", "-A"], get_all, env, runs)
    out = subprocess.run([plugin, "status", "-A"], capture_output=True, text=True, env=env).stdout
    rows = max(0, len(out.splitlines()) - 1)
    print(f"kubectl get rollouts -A -o json     {listing * 1000:7.0f} ms   (reference)")
    print(f"kubectl-agentroll status -A         {everything * 1000:7.0f} ms   {rows} rows (target < 2000 ms)")
    print(json.dumps({"get_one_ms": round(kubectl * 1000), "status_one_ms": round(ours * 1000),
                      "ratio": round(ours / kubectl, 2), "rollouts": args.count,
                      "get_all_ms": round(listing * 1000), "status_all_ms": round(everything * 1000)}))

    cleanup(api, args.keep, ONE_NS, MANY_NS)


def cleanup(api: Rest, keep: bool, *namespaces: str) -> None:
    if not keep:
        for ns in namespaces:
            api.request("DELETE", f"/api/v1/namespaces/{ns}", what=f"namespace {ns}")
    api.close()


if __name__ == "__main__":
    main()
