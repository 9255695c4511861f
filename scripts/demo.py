"""The product working, in one command: a healthy prompt change walks to 100%, a degraded one is
stopped at 5% of traffic. Run through `scripts/demo` (which installs the project first).

On the local control plane (scripts/local-cluster, with Prometheus) it installs the Helm chart
(policy CRD, default policy, the agent-quality templates), runs the webhook as a local process the
API server calls, the canary judge (reading the local Prometheus) and the agent traffic generator;
then it tells the story and checks that it happened. Time is compressed: 40-second pauses with a
judge's look every 10 seconds at 12,000 tasks/min, where production uses minutes at a real agent's
rate.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from agenttraffic.split import canary_weight  # noqa: E402
from localcluster import cluster, heartbeat, procs, prometheus, webhookrender  # noqa: E402
from localcluster.config import ClusterError, Paths, child_env, free_port  # noqa: E402
from localcluster.health import http_ok  # noqa: E402

from kubectl_agentroll import verdictview  # noqa: E402

NAMESPACE = "agentroll-demo"
ROLLOUT = "support-agent"
TASKS_PER_MINUTE = 12000
PAUSE = "40s"
LOOK_INTERVAL = "10s"
STABLE_PROMPT, GOOD_PROMPT, BAD_PROMPT = "support-v7", "support-v8", "support-v9"
SCENARIO = f"""# agent quality by composite-version layer (scripts/agent-traffic --help)
default: {{hallucination: 0.05, completion: 0.90, tool_success: 0.97, cost: 0.02, cost_cv: 1.0,
          tool_correlation: 0.2}}
versions:
  - match: {{prompt-version: {BAD_PROMPT}}}   # the two-word prompt change that made it hallucinate
    hallucination: 0.20
"""
MANIFEST = """apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    agentroll.dev/inject: "true"
    agentroll.dev/prompt-version: "{prompt}"
    agentroll.dev/tools: "crm-mcp-server@1.2.0,search@2.0.1"
spec:
  replicas: 4
  revisionHistoryLimit: 3
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: agent
          image: registry.local/support-agent:1.8.2
          env: [{{name: ANTHROPIC_MODEL, value: claude-sonnet-4-20250514}}]
  strategy:
    canary:
      steps:
        - setWeight: 5
        - pause: {{duration: {pause}}}
        - setWeight: 25
        - pause: {{duration: {pause}}}
        - setWeight: 50
        - pause: {{duration: {pause}}}
"""


class StoryError(Exception):
    """The story did not happen as told."""


def say(text: str = "") -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, p: Paths, work: Path):
        self.p, self.work = p, work
        self.env = child_env() | {"KUBECONFIG": str(p.kubeconfig),
                                  "PATH": f"{p.bin}:{os.environ['PATH']}"}
        self.t0 = time.monotonic()

    def run(self, *cmd: str, input: str | None = None, check: bool = True) -> str:
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env, timeout=300)
        if check and r.returncode != 0:
            raise ClusterError(f"`{' '.join(cmd[:4])}` failed: {(r.stderr or r.stdout).strip()[-300:]}")
        return r.stdout

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.run(str(self.p.bin / "kubectl"), *args, input=input)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.t0:5.0f}s]"

    # -- setting up ---------------------------------------------------------------------------

    def install(self, prometheus_url: str) -> None:
        """The chart, with the webhook and the judge served by local processes (registered like
        components, so `scripts/local-cluster down` stops them too)."""
        certs = self.work / "certs"
        webhook = shutil.which("agentroll-webhook")
        if not webhook:
            raise ClusterError("agentroll-webhook not on PATH: run the demo through scripts/demo")
        self.run(webhook, "certs", "--out-dir", str(certs), "--ip", "127.0.0.1")
        port = free_port()
        judge = self.start_judge(webhook, prometheus_url)
        self.run(str(self.p.bin / "helm"), "upgrade", "--install", "agentroll",
                 str(REPO / "charts" / "agentroll"), "--namespace", "agentroll-system",
                 "--create-namespace", *webhookrender.helm_args(f"https://127.0.0.1:{port}/mutate",
                                                                (certs / "ca.crt").read_bytes()),
                 "--set", f"analysisTemplates.prometheusAddress={prometheus_url}",
                 "--set", f"defaultPolicy.analysis.lookInterval={LOOK_INTERVAL}",
                 "--set-json", "defaultPolicy.analysis.args=" + json.dumps(
                     [{"name": "judge-address", "value": judge}]), "--wait=false")
        procs.start(self.p, "agentroll-webhook", [
            webhook, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--tls-cert-file", str(certs / "tls.crt"), "--tls-private-key-file", str(certs / "tls.key"),
            "--kubeconfig", str(self.p.kubeconfig)], {"https": port}, env=self.env)
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        ready = f"https://127.0.0.1:{port}/readyz"
        _wait(lambda: http_ok(ready, ctx)[0], 60, "the webhook ready")

    def start_judge(self, webhook: str, prometheus_url: str) -> str:
        port = free_port()
        procs.start(self.p, "agentroll-judge", [
            webhook, "judge", "--host", "127.0.0.1", "--port", str(port), "--prometheus", prometheus_url],
            {"http": port}, env=self.env)
        _wait(lambda: http_ok(f"http://127.0.0.1:{port}/healthz")[0], 60, "the judge ready")
        return f"http://127.0.0.1:{port}"

    def start_traffic(self) -> None:
        scenario = self.work / "scenario.yaml"
        scenario.write_text(SCENARIO)
        port = free_port()
        procs.start(self.p, "agent-traffic", [
            sys.executable, str(HERE / "agent-traffic"), "--rollout", f"{NAMESPACE}/{ROLLOUT}",
            "--tasks-per-minute", str(TASKS_PER_MINUTE), "--scenario", str(scenario), "--seed", "7",
            "--listen", f"127.0.0.1:{port}"], {"metrics": port}, env=self.env)
        prometheus.add_target(self.p, "agent-traffic", f"127.0.0.1:{port}")

    # -- the story ----------------------------------------------------------------------------

    def apply(self, prompt: str) -> None:
        manifest = MANIFEST.format(name=ROLLOUT, ns=NAMESPACE, prompt=prompt, pause=PAUSE)
        self.kubectl("apply", "-f", "-", input=manifest)

    def status(self) -> None:
        out = self.run("kubectl-agentroll", "status", ROLLOUT, "-n", NAMESPACE, check=False)
        say("    " + out.rstrip().replace("\n", "\n    "))

    def follow(self, until, timeout: float) -> dict:
        """Print each step the controller takes until until(rollout) holds; return that Rollout."""
        seen = None
        self.weights: list[float] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ro = self.get("rollout", ROLLOUT, "-n", NAMESPACE)
            st = ro.get("status", {})
            now = (st.get("phase"), st.get("currentStepIndex"), st.get("stableRS"), st.get("abort"))
            self.weights.append(canary_weight(ro))
            if now != seen:
                seen = now
                say(f"  {self.elapsed()} phase {st.get('phase')}, step {st.get('currentStepIndex', '-')}"
                    f"/{len(ro['spec']['strategy']['canary']['steps'])}, canary weight "
                    f"{canary_weight(ro):g}%{' (aborted)' if st.get('abort') else ''}")
            if until(ro):
                return ro
            time.sleep(1)
        raise StoryError(f"timed out after {timeout:.0f}s waiting ({seen})")

    def decisive_values(self) -> None:
        """The judge's last answer: its decision and, per metric, canary vs stable."""
        runs = self.get("analysisruns", "-n", NAMESPACE)["items"]
        measured = [(m.get("finishedAt") or "", run["metadata"]["name"], m.get("value"))
                    for run in runs for r in run.get("status", {}).get("metricResults", [])
                    for m in r.get("measurements") or [] if m.get("value")]
        if not measured:
            return
        _, name, value = max(measured)
        view = verdictview.parse(value)
        if view is None:
            return
        say(f"    {name}: {verdictview.headline(view)}")
        for e in view.metrics:
            say(f"      {e.metric:<22} {e.status:<6} canary {e.canary:<26} stable {e.stable:<26} "
                f"statistic {e.statistic} (fails at {e.boundary})")

    def story(self) -> None:
        self.kubectl("apply", "-f", "-",
                     input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n")
        say(f"\n{self.elapsed()} 1. {ROLLOUT} v1 (prompt {STABLE_PROMPT}), 4 replicas")
        self.apply(STABLE_PROMPT)
        self.follow(lambda ro: ro.get("status", {}).get("phase") == "Healthy", 120)
        self.start_traffic()
        self.status()

        say(f"\n{self.elapsed()} 2. a healthy prompt change ({STABLE_PROMPT} -> {GOOD_PROMPT}): "
            "5% -> 25% -> 50% -> 100%, each step gated on agent quality")
        t = time.monotonic()
        self.apply(GOOD_PROMPT)
        before = self.get("rollout", ROLLOUT, "-n", NAMESPACE)["status"].get("stableRS")

        def ended(ro: dict) -> bool:  # promoted, or aborted (then stableRS stays what it was)
            st = ro["status"]
            return bool(st.get("abort")) or (st.get("phase") == "Healthy" and st.get("stableRS") != before)

        ro = self.follow(ended, 300)
        self.decisive_values()
        if ro["status"].get("abort") or ro["status"].get("phase") != "Healthy":
            raise StoryError(f"the healthy change was not promoted: {ro['status'].get('message')} (the judge "
                             "aborts about 1 healthy canary in 20 by design: README, \"Gate quality\")")
        say(f"  promoted in {time.monotonic() - t:.0f}s")
        self.status()

        say(f"\n{self.elapsed()} 3. a degraded prompt ({GOOD_PROMPT} -> {BAD_PROMPT}: "
            "hallucinations 5% -> 20%)")
        t = time.monotonic()
        good = ro["status"]["stableRS"]
        self.apply(BAD_PROMPT)
        ro = self.follow(lambda ro: ro["status"].get("phase") in ("Degraded", "Healthy")
                         and ro["status"].get("currentPodHash") != good, 240)
        self.decisive_values()
        st = ro["status"]
        if not st.get("abort") or st.get("stableRS") != good:
            raise StoryError(f"the degraded change was not aborted (phase {st.get('phase')})")
        if max(self.weights) > 5:
            raise StoryError(f"aborted only at {max(self.weights):g}% of traffic, not during the 5% step")
        ready = self._ready_hashes()
        say(f"  aborted at 5% of traffic after {time.monotonic() - t:.0f}s; ready pods by version: {ready}")
        self._wait_back_on(good)
        self.status()

    def _ready_hashes(self) -> dict:
        counts: dict = {}
        for pod in self.get("pods", "-n", NAMESPACE, "-l", f"app={ROLLOUT}")["items"]:
            conditions = pod["status"].get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                h = pod["metadata"]["labels"].get("rollouts-pod-template-hash")
                counts[h] = counts.get(h, 0) + 1
        return counts

    def _wait_back_on(self, good: str) -> None:
        def only_stable() -> bool:
            hashes = self._ready_hashes()
            return set(hashes) == {good} and hashes[good] == 4
        _wait(only_stable, 60, "every ready pod back on the stable version")
        say(f"  {self.elapsed()} all 4 ready pods run the stable version {good}")


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise StoryError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true",
                    help="leave the cluster, webhook and traffic running afterwards, to explore")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    p = cluster.paths()
    was_running = cluster.healthy(p)
    say("AgentRoll demo: evaluation-gated canaries for an AI agent, on a real kube-apiserver, "
        "Argo Rollouts controller and Prometheus (local processes).")
    say(f"Time is compressed: {PAUSE} pauses, a judge's look every {LOOK_INTERVAL}, "
        f"{TASKS_PER_MINUTE:,} tasks/min.\n")
    ok = False
    try:
        if cluster.up() != 0:
            return 1
        say(f"control plane ready after {time.monotonic() - t0:.0f}s")
        watchdog = _controller_watchdog(p)
        try:
            with tempfile.TemporaryDirectory(prefix="agentroll-demo-") as tmp:
                demo = Demo(p, Path(tmp))
                demo.install(cluster.prometheus_url(p))
                demo.story()
        finally:
            watchdog.stop()
        ok = True
        say(f"\nThe story happened as told in {time.monotonic() - t0:.0f}s: the healthy version was "
            "promoted through every step, the degraded one was stopped at 5% of traffic.")
        return 0
    except (ClusterError, StoryError) as e:
        say(f"\ndemo: FAILED: {e}")
        say(f"  logs: {p.logs}")
        return 1
    except KeyboardInterrupt:
        say("\ndemo: interrupted")
        return 130
    finally:
        _finish(p, keep=args.keep, was_running=was_running, ok=ok)


def _controller_watchdog(p: Paths) -> heartbeat.Watchdog:
    """The test bed's Argo controller has been seen to stop hearing changes for minutes; the story
    would then wait in vain. A deaf controller is restarted (after a goroutine dump to its log)."""

    def restart(_beat: heartbeat.Beat) -> None:
        say("(the Argo controller stopped seeing changes: restarting it; see logs/heartbeat.log)")
        try:
            cluster.restart("argo-rollouts", dump=True)
        except ClusterError as err:
            say(f"(restarting the Argo controller failed: {err})")

    watchdog = heartbeat.Watchdog(heartbeat.Heartbeat(p, p.bin / "kubectl"), restart)
    watchdog.start()
    return watchdog


def _finish(p: Paths, keep: bool, was_running: bool, ok: bool) -> None:
    if keep:
        say(f"\nLeft running (--keep). To explore:\n  eval \"$(scripts/local-cluster env)\"\n"
            f"  kubectl-agentroll status {ROLLOUT} -n {NAMESPACE}\n"
            f"  kubectl-agentroll version-diff {ROLLOUT} -n {NAMESPACE}\n"
            f"  kubectl get analysisruns -n {NAMESPACE}\n"
            f"  curl -s \"$AGENTROLL_PROMETHEUS/api/v1/query?query=sum+by+(rollouts_pod_template_hash)"
            f"(agentroll_tasks_total)\"\n"
            f"  scripts/local-cluster status; scripts/local-cluster down   # stops everything")
        return
    prometheus.remove_target(p, "agent-traffic")
    problems = [m for comp in ("agent-traffic", "agentroll-judge", "agentroll-webhook")
                if (m := procs.stop(p, comp))]
    if was_running:
        say("(the cluster was running before the demo: left running, demo processes stopped)")
    else:
        problems += procs.stop_all(p, cluster.ORDER)
    if problems:
        say(f"demo: cleanup problems: {'; '.join(problems)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
