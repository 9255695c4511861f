"""Text for people: the status views, the revision tree, history; colour when a terminal wants it.

Pure: display models in, strings out. Colour is ANSI SGR, decided by the caller (a terminal,
no NO_COLOR, no --no-color); widths are computed on the plain text so colour never shifts columns.
"""

from __future__ import annotations

from dataclasses import dataclass

GREEN, RED, YELLOW, GREY, CYAN, BOLD = "32", "31", "33", "90", "36", "1"

ICONS = {
    "Healthy": ("✔", GREEN), "Successful": ("✔", GREEN), "Running": ("✔", GREEN),
    "Succeeded": ("✔", GREEN),
    "Progressing": ("◌", YELLOW), "Pending": ("◌", YELLOW), "ContainerCreating": ("◌", YELLOW),
    "Terminating": ("◌", GREY),
    "Paused": ("॥", YELLOW), "Inconclusive": ("⚠", YELLOW),
    "Degraded": ("✖", RED), "Failed": ("✖", RED), "Error": ("✖", RED),
    "ScaledDown": ("•", GREY),
    # the judge's per-metric evidence
    "ok": ("✔", GREEN), "fail": ("✖", RED), "needs-data": ("◌", YELLOW), "fault": ("⚠", YELLOW),
}


@dataclass(frozen=True)
class Style:
    """Whether to colour: decided once by the caller."""

    colour: bool = False

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def state(self, status: str, ok: bool = True) -> tuple[str, str]:
        """(plain, painted) text of a status with its icon; a Running pod that is not ready is yellow."""
        icon, code = ICONS.get(status, ("✖", RED) if status.endswith(("BackOff", "Err", "Error"))
                               else ("◌", YELLOW))
        if status == "Running" and not ok:
            icon, code = "◌", YELLOW
        plain = f"{icon} {status}"
        return plain, self.paint(plain, code)


def tabulate(rows: list, headers: list) -> str:
    """Left-aligned columns two spaces apart, like tabulate's "plain" format (which costs ~25 ms to
    import: too much for a command that should start as fast as kubectl)."""
    table = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in table)
    return "\n".join(line.rstrip() for line in lines)


def _painted_table(rows: list[list[tuple[str, str]]], headers: list[str]) -> str:
    """Like `tabulate`, for cells given as (plain, painted)."""
    widths = [max([len(h)] + [len(r[i][0]) for r in rows]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    for row in rows:
        cells = [painted + " " * (w - len(plain)) for (plain, painted), w in zip(row, widths, strict=False)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def render_status(model, tree=None, style: Style = Style()) -> str:  # noqa: B008 - frozen
    """The one-Rollout view: summary, layers, analysis, then (when given) the revision tree."""
    phase_plain, phase_painted = style.state(model.phase)
    phase = phase_painted.replace(phase_plain, phase_plain + (" (aborted)" if model.aborted else ""))
    lines = [f"Name:          {style.paint(model.name, BOLD)}", f"Namespace:     {model.namespace}",
             f"Status:        {phase}" + (f" - {model.message}" if model.message else "")]
    if model.aborted:
        lines.append("               " + style.paint(
            "ABORTED: running the stable version; the canary was scaled down", RED))
    lines.append(f"Strategy:      {model.strategy or '-'}")
    if model.strategy == "Canary":
        lines.append(f"  Step:        {model.step or '-'}")
        lines.append(f"  SetWeight:   {model.set_weight}")
        lines.append(f"  ActualWeight: {model.actual_weight}")
    r = model.replicas
    lines.append(f"Replicas:      desired {r.desired}, current {r.current}, updated {r.updated}, "
                 f"ready {r.ready}, available {r.available}")
    if not model.opted_in:
        lines.append("               (not an agent Rollout: no agentroll.dev/composite-version label)")
    lines.append("")
    new_role = model.canary.role if model.canary else "canary"

    def head(v, role):
        return f"{role} (rev {v.revision}, {v.pod_template_hash})" if v else f"{role} (none)"

    rows = [[(row.layer, row.layer), (row.stable or "-", row.stable or "-"),
             (row.canary or "-", row.canary or "-"),
             ("changed", style.paint("changed", YELLOW)) if row.changed else ("", "")]
            for row in model.layers]
    headers = ["LAYER", head(model.stable, "stable"), head(model.canary, new_role), ""]
    lines.append(_painted_table(rows, headers))
    if model.canary is None:
        lines.append("(no update in flight)")
    if model.analysis_runs:
        lines.append("")
        lines.append("Analysis of the current revision:")
        run_rows, metric_rows = [], []
        for run in model.analysis_runs:
            where = f"step {run.step_index}" if run.step_index is not None else run.kind or "-"
            run_rows.append([(run.name, run.name), (where, where), style.state(run.phase),
                             (run.message or "", run.message or "")])
            for m in run.metrics:
                cells = [run.name, m.name]
                metric_rows.append([(c, c) for c in cells] + [style.state(m.phase)] + [
                    (c, c) for c in (", ".join(m.values) or "-", m.success_condition or "-",
                                     m.failure_condition or "-",
                                     f"{m.successful}/{m.failed}/{m.inconclusive}/{m.error}")])
        lines.append(_painted_table(run_rows, ["RUN", "FOR", "PHASE", "MESSAGE"]))
        if metric_rows:
            lines.append("")
            lines.append(_painted_table(metric_rows, [
                "RUN", "METRIC", "PHASE", "LAST VALUES", "SUCCESS IF", "FAILURE IF", "OK/FAIL/INC/ERR"]))
        lines += _judge_lines(model.analysis_runs, style)
    if model.requirements:
        lines.append("")
        lines.append("Tool requirements (agentroll.dev/tool-requirements) and what runs now:")
        lines.append(_painted_table([[(r.tool, r.tool), (r.requirement, r.requirement),
                                      (", ".join(r.running) or "none", ", ".join(r.running) or "none"),
                                      style.state("ok" if r.satisfied else "fail")]
                                     for r in model.requirements],
                                    ["TOOL", "REQUIRES", "RUNNING NOW", "MET"]))
    if model.waiting_on:
        lines.append(f"Dependencies:  {style.paint(model.waiting_on, YELLOW)} (the dependency gate holds "
                     "this canary before its first step)")
    for note in model.notes:
        lines.append(f"Note: {note}")
    if tree:
        lines.append("")
        lines.append(render_tree(model.name, model.phase, tree, style))
    return "\n".join(lines)


def _judge_lines(runs, style: Style) -> list[str]:
    """The judge's last answer per run that asked it: canary vs stable with intervals, the
    statistic against its boundary, the information in, and why, in plain words."""
    from kubectl_agentroll import verdictview

    lines = []
    for run in runs:
        for m in run.metrics:
            v = m.verdict
            if v is None:
                continue
            lines += ["", f"{run.name}: {verdictview.headline(v)}"]
            if v.metrics:
                cells = [(e, (e.canary, e.stable, e.difference, e.statistic, e.boundary, e.information))
                         for e in v.metrics]
                rows = [[(e.metric, e.metric), style.state(e.status), *[(c, c) for c in rest]]
                        for e, rest in cells]
                lines.append(_painted_table(rows, ["METRIC", "STATUS", "CANARY", "STABLE", "DIFFERENCE",
                                                   "STATISTIC", "FAILS AT", "INFORMATION"]))
    return lines


def render_tree(name: str, phase: str, nodes, style: Style = Style()) -> str:  # noqa: B008 - frozen
    """Revisions -> ReplicaSets -> AnalysisRuns and pods, as `kubectl argo rollouts get` draws them."""
    rows: list[list[tuple[str, str]]] = []

    def row(prefix: str, icon: str, label: str, kind: str, status: tuple[str, str], age: str, info: str):
        text = f"{prefix}{icon} {label}"
        rows.append([(text, text), (kind, kind), status, (age, age), (info, info)])

    row("", "⟳", name, "Rollout", style.state(phase), "", "")
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        branch, indent = ("└──", "   ") if last else ("├──", "│  ")
        roles = ",".join(node.roles)
        text = f"{branch}# revision:{node.revision}"
        tag = f"  {roles}" if roles else ""
        rows.append([(text + tag, text + style.paint(tag, CYAN)), ("", ""), ("", ""), ("", ""),
                     (node.composite, node.composite)])
        children = [("rs", node)] + [("run", r) for r in node.runs]
        pods = node.pods
        for j, (kind, child) in enumerate(children):
            end = j == len(children) - 1
            sub = indent + ("└──" if end else "├──")
            if kind == "rs":
                row(sub, "⧉", child.replicaset, "ReplicaSet", style.state(child.status), child.age,
                    f"ready:{child.replicas}")
                pod_indent = indent + ("   " if end else "│  ")
                for k, pod in enumerate(pods):
                    twig = pod_indent + ("└──" if k == len(pods) - 1 else "├──")
                    ready_n, _, total = pod.ready.partition("/")
                    info = f"ready:{pod.ready}" + (f",restarts:{pod.restarts}" if pod.restarts else "")
                    state = style.state(pod.status, ok=ready_n == total)
                    row(twig, "□", pod.name, "Pod", state, pod.age, info)
            else:
                info = f"✔ {child.successful},✖ {child.failed}"
                row(sub, "α", child.name, "AnalysisRun", style.state(child.phase), child.age, info)
    return _painted_table(rows, ["NAME", "KIND", "STATUS", "AGE", "INFO"])


def render_rows(rows, all_namespaces: bool, style: Style = Style()) -> str:  # noqa: B008 - frozen
    if not rows:
        return ("No agent Rollouts found (opted in: agentroll.dev/composite-version label "
                "or inject annotation).")
    table = []
    for row in rows:
        version = f"{row.stable} -> {row.canary}" if row.canary else row.stable
        plain, painted = style.state(row.phase)
        if row.aborted:
            plain, painted = plain + " (aborted)", painted.replace(plain, plain + " (aborted)")
        cells = [(row.name, row.name), (plain[2:], painted.replace(plain, plain[2:]))]
        cells += [(c, c) for c in (row.step or "-", row.weight or "-", version)]
        table.append(([(row.namespace, row.namespace)] if all_namespaces else []) + cells)
    headers = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME", "PHASE", "STEP", "WEIGHT", "STABLE -> CANARY"]
    return _painted_table(table, headers)


def render_history(revisions, style: Style = Style()) -> str:  # noqa: B008 - frozen
    rows = []
    for r in revisions:
        v = r.version
        role = style.paint(r.role, CYAN) if r.role != "old" else r.role
        rows.append([(str(r.revision), str(r.revision)), (r.role, role),
                     (r.created or "-", r.created or "-"), (v.composite, v.composite)]
                    + [(v.raw[layer] if v.raw[layer] != "unset" else v.layers[layer],) * 2
                       for layer in ("prompt", "model", "tools", "image")]
                    + [style.state(r.analysis) if r.analysis != "none" else ("none", "none")])
    text = _painted_table(rows, ["REVISION", "ROLE", "CREATED", "COMPOSITE", "PROMPT", "MODEL", "TOOLS",
                                 "IMAGE", "ANALYSIS"])
    decisive = [f"  rev {r.revision}: {line}" for r in revisions for line in r.decisive
                if r.analysis != "Successful"]
    return text + ("\n\nWhy analyses did not pass:\n" + "\n".join(decisive) if decisive else "")


def frame(text: str) -> str:
    """A redraw in place on a terminal: home, each line cleared to its end, the rest cleared."""
    return "\x1b[H" + "\n".join(line + "\x1b[K" for line in text.split("\n")) + "\n\x1b[J"


def render_deps(nodes, style: Style = Style()) -> str:  # noqa: B008 - frozen
    """The agent network: agents, the tools they require and the agents they depend on."""
    if not nodes:
        return "No agents or tool servers found."
    rows: list[list[tuple[str, str]]] = []

    def add(node, prefix: str, branch: str) -> None:
        icon = {"agent": "⟳", "tool": "⚙", "tool-server": "⚙"}[node.kind]
        label = f"{prefix}{branch}{icon} {node.kind} {node.name}"
        state = style.state("ok" if node.state == "met" else "fail") if node.kind == "tool" \
            else style.state(node.state)
        if node.kind == "agent" and node.state == "Missing":
            state = style.state("fail")
        info = node.note or ("mid-rollout" if node.in_flight else "")
        rows.append([(label, label), (node.requirement or "-", node.requirement or "-"), state,
                     (node.version, node.version), (info, style.paint(info, YELLOW) if info else info)])
        inner = prefix + ("" if not branch else "    " if branch == "└── " else "│   ")
        for i, child in enumerate(node.children):
            add(child, inner, "└── " if i == len(node.children) - 1 else "├── ")

    for node in nodes:
        add(node, "", "")
    return _painted_table(rows, ["NAME", "REQUIRES", "STATE", "VERSION (RUNNING)", "NOTE"])
