"""Prometheus on loopback: what it scrapes is a directory of target files (file service discovery).

A test, the demo or a person registers an endpoint with `add_target` (or `local-cluster scrape`);
Prometheus picks it up within a second and scrapes it every SCRAPE_INTERVAL. Series keep the labels
the endpoint exposes (`honor_labels`), because the agent metrics contract's `namespace` and
`rollouts_pod_template_hash` labels come from the exporter here, not from pod discovery.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .config import ClusterError, Paths

SCRAPE_INTERVAL = "1s"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62})$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def config_yaml(p: Paths) -> str:
    return f"""# written by scripts/local-cluster
global:
  scrape_interval: {SCRAPE_INTERVAL}
  scrape_timeout: {SCRAPE_INTERVAL}
  evaluation_interval: {SCRAPE_INTERVAL}
scrape_configs:
  - job_name: agentroll
    honor_labels: true
    file_sd_configs:
      - files: ["{p.scrape_targets}/*.json"]
        refresh_interval: 1s
"""


def add_target(p: Paths, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
    """Have Prometheus scrape http://ADDRESS/metrics as NAME (replacing a target of that name)."""
    if not _NAME.match(name):
        raise ClusterError(f"scrape target name {name!r}: expected lowercase letters, digits, "
                           "'.', '_' or '-'")
    if not _ADDRESS.match(address):
        raise ClusterError(f"scrape target address {address!r}: expected HOST:PORT")
    path = p.scrape_targets / f"{name}.json"
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": {"target": name, **(labels or {})}}]))
    os.replace(tmp, path)  # file SD never reads half a file
    return path


def remove_target(p: Paths, name: str) -> bool:
    path = p.scrape_targets / f"{name}.json"
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
