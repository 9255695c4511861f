"""Where things live: pinned versions, the binary cache, the cluster's state directory."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
VERSIONS_FILE = REPO_ROOT / "scripts" / "versions.json"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class ClusterError(Exception):
    """An error reported to the user as one line (no traceback)."""


def log(msg: str) -> None:
    print(f"[local-cluster] {msg}", flush=True)


def load_versions() -> dict[str, str]:
    try:
        data = json.loads(VERSIONS_FILE.read_text())
    except (OSError, ValueError) as e:
        raise ClusterError(f"cannot read {VERSIONS_FILE}: {e}") from None
    return {k: v for k, v in data.items() if not k.startswith("_")}


def cache_root() -> Path:
    return Path(os.environ.get("AGENTROLL_CACHE") or Path.home() / ".cache" / "agentroll").expanduser()


def cluster_dir() -> Path:
    d = os.environ.get("AGENTROLL_CLUSTER_DIR")
    return Path(d).expanduser().resolve() if d else REPO_ROOT / ".local-cluster"


class Paths:
    """The layout of one cluster's state directory."""

    def __init__(self, root: Path):
        self.root = root
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.run = root / "run"
        self.data = root / "data"
        self.bin = root / "bin"
        self.conf = root / "conf"
        self.kubeconfig = root / "kubeconfig"
        self.scrape_targets = self.conf / "scrape-targets"

    def component_log(self, comp: str) -> Path:
        return self.logs / f"{comp}.log"

    def pidfile(self, comp: str) -> Path:
        return self.run / f"{comp}.json"

    def make_dirs(self) -> None:
        for d in (self.root, self.logs, self.run, self.bin, self.conf, self.scrape_targets):
            d.mkdir(parents=True, exist_ok=True)


def child_env() -> dict[str, str]:
    """The environment of every component: no proxies for loopback, no inherited KUBECONFIG."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env.pop("KUBECONFIG", None)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))  # free on every interface (argo binds ":port")
        return s.getsockname()[1]
