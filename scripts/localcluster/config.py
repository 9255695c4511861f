"""Where things live: pinned versions, the binary cache, the cluster's state directory."""
from __future__ import annotations

import json
import os
import random
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


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A port free on every interface now (argo binds ":port"), from below the kernel's ephemeral
    range: a port is picked well before its component listens on it (Prometheus, the last one,
    ~10 s later), and a port from that range could meanwhile become the source port of one of the
    control plane's own outgoing connections (seen once: Prometheus 'address already in use')."""
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, low) if low > 11000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ClusterError("no free port below the ephemeral range after 200 tries")
