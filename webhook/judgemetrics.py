"""The judge's own decisions and statistics per rollout, as Prometheus metrics, so a dashboard or
an alert can show why a canary was stopped. Bounded: the 1,000 most recently judged rollouts."""
from __future__ import annotations

from collections import Counter, OrderedDict

MAX_ROLLOUTS = 1000
GAUGES = {
    "statistic": "The metric's test statistic at the last look (positive: canary worse).",
    "boundary": "The statistic at or above which the canary fails at the last look.",
    "information_fraction": "Information in, as a fraction of what a pass at the plan's end needs.",
    "alpha_spent": "False-abort probability spent on the metric so far.",
}


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class JudgeMetrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.decisions: Counter[tuple[str, str, str]] = Counter()
        self.latest: OrderedDict[tuple[str, str], dict] = OrderedDict()

    def request(self, outcome: str) -> None:
        self.requests[outcome] += 1

    def verdict(self, target, body: dict) -> None:
        self.request("ok")
        key = (target.namespace, target.rollout)
        self.decisions[(*key, body["decision"])] += 1
        self.latest[key] = {"canary": target.canary_hash, "metrics": body.get("metrics") or {}}
        self.latest.move_to_end(key)
        while len(self.latest) > MAX_ROLLOUTS:
            (ns, name), _ = self.latest.popitem(last=False)
            for k in [k for k in self.decisions if k[:2] == (ns, name)]:
                del self.decisions[k]

    def render(self) -> str:
        lines = ["# HELP agentroll_judge_requests_total Verdict requests by outcome.",
                 "# TYPE agentroll_judge_requests_total counter"]
        lines += [f'agentroll_judge_requests_total{{outcome="{o}"}} {n}'
                  for o, n in sorted(self.requests.items())]
        lines += ["# HELP agentroll_judge_decisions_total Verdicts given, by rollout and decision.",
                  "# TYPE agentroll_judge_decisions_total counter"]
        for (ns, name, decision), n in sorted(self.decisions.items()):
            lines.append(f'agentroll_judge_decisions_total{{namespace="{_escape(ns)}",rollout="{_escape(name)}",'
                         f'decision="{decision}"}} {n}')
        for field, help_text in GAUGES.items():
            lines += [f"# HELP agentroll_judge_{field} {help_text}", f"# TYPE agentroll_judge_{field} gauge"]
            for (ns, name), latest in self.latest.items():
                for metric, ev in sorted(latest["metrics"].items()):
                    value = ev.get(field)
                    if value is None:
                        continue
                    labels = (f'namespace="{_escape(ns)}",rollout="{_escape(name)}",'
                              f'canary_hash="{_escape(latest["canary"])}",metric="{_escape(metric)}"')
                    lines.append(f"agentroll_judge_{field}{{{labels}}} {value}")
        return "\n".join(lines) + "\n"
