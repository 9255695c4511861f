"""Build pinned Go modules with the machine's `go` into a cache keyed by component, version and go.

Some modules cannot be `go install`ed as published (replace directives, a newer `go` line); each
builder below says what it works around. A build is complete only once `.complete` is written, so
an interrupted build is redone, never half-used.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .config import ClusterError, cache_root, load_versions, log

PROGRESS_EVERY = 15.0  # seconds between "still building" lines

_GO_VERSION: str | None = None


def go_bin() -> str | None:
    return shutil.which("go")


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"  # build with the machine's go, never download another one
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-buildvcs=false -mod=mod"
    env.setdefault("GOPROXY", "https://proxy.golang.org,direct")
    return env


def go_version() -> str:
    """`go1.26.8` of the local toolchain (never auto-switched)."""
    global _GO_VERSION
    if _GO_VERSION is None:
        go = go_bin()
        if not go:
            raise ClusterError("`go` not found in PATH and binaries are not cached; install Go >= 1.26 "
                               f"or populate {cache_root()}/bin")
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, env=build_env())
        if out.returncode != 0 or not out.stdout.strip():
            raise ClusterError(f"`go env GOVERSION` failed: {out.stderr.strip()[:200]}")
        _GO_VERSION = out.stdout.strip().split()[0]
    return _GO_VERSION


def local_go_directive() -> str:
    """The machine's go version as a go.mod `go` line value (e.g. 1.26.8)."""
    return go_version().removeprefix("go")


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


@dataclass
class BuildContext:
    """What a builder needs: the version, the output dir, the build log."""

    what: str
    version: str
    out: Path
    logf: IO[str]
    started: float

    def run(self, cmd: list, cwd: Path | None = None, env: dict | None = None) -> None:
        """Run cmd with output in the build log, printing progress every PROGRESS_EVERY s."""
        self.logf.write(f"\n$ (cd {cwd or os.getcwd()} && {' '.join(map(str, cmd))})\n")
        self.logf.flush()
        p = subprocess.Popen([str(c) for c in cmd], cwd=cwd or tempfile.gettempdir(), stdout=self.logf,
                             stderr=subprocess.STDOUT, env=env or build_env(), start_new_session=True)
        last = time.monotonic()
        try:
            while True:
                try:
                    rc = p.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() - last >= PROGRESS_EVERY:
                        last = time.monotonic()
                        log(f"  building {self.what}: {time.monotonic() - self.started:.0f}s elapsed "
                            f"({Path(cmd[0]).name} {cmd[1]})")
        except KeyboardInterrupt:
            os.killpg(p.pid, signal.SIGTERM)
            raise
        if rc != 0:
            raise ClusterError(f"building {self.what} failed (exit {rc}) during "
                               f"`{Path(cmd[0]).name} {cmd[1]}`; see {self.logf.name}")

    def install(self, package_at_version: str, ldflags: str, tags: str = "") -> None:
        """`go install` a published module's command into the output dir."""
        env = build_env()
        env["GOBIN"] = str(self.out)
        cmd = [go_bin(), "install", "-trimpath", "-ldflags", ldflags]
        cmd += ["-tags", tags] if tags else []
        self.run([*cmd, package_at_version], env=env)

    def download(self, module_at_version: str) -> dict:
        """`go mod download -json m@v` -> its JSON (Dir, GoMod, Zip, Error...), even on failure."""
        with tempfile.TemporaryFile("w+") as out:
            self.logf.write(f"\n$ go mod download -json {module_at_version}\n")
            self.logf.flush()
            p = subprocess.run([go_bin(), "mod", "download", "-json", module_at_version], stdout=out,
                               stderr=self.logf, env=build_env(), cwd=tempfile.gettempdir())
            out.seek(0)
            try:
                info = json.loads(out.read())
            except ValueError:
                info = {}
        info["_ok"] = p.returncode == 0 and "Dir" in info
        return info

    def download_or_fail(self, module_at_version: str) -> dict:
        info = self.download(module_at_version)
        if not info["_ok"]:
            raise ClusterError(f"building {self.what}: cannot download {module_at_version} "
                               f"({info.get('Error', 'see log')}); see {self.logf.name}")
        return info


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _tools_go(packages: list[str]) -> str:
    imports = "".join(f'\t_ "{p}"\n' for p in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"


def build_kubernetes(b: BuildContext) -> None:
    # k8s.io/kubernetes' go.mod replaces its staging modules with ./staging/..., which `go install`
    # refuses: a wrapper module replaces each with the published k8s.io/<name> v0.<minor>.<patch>.
    version = b.version
    src = cache_root() / "src" / f"kubernetes-{version}"
    major, minor, patch = _vtuple(version)
    info = b.download_or_fail(f"k8s.io/kubernetes@{version}")
    gomod = Path(info["GoMod"]).read_text()
    staged = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.M)
    required = set(re.findall(r"^\s*(k8s\.io/[\w./-]+)\s+v0\.0\.0\b", gomod, re.M))
    staged = [m for m in staged if m in required]
    if not staged:
        raise ClusterError(f"building {b.what}: found no staging replaces in k8s.io/kubernetes go.mod")
    lines = ["module agentroll.local/build/kubernetes", "", f"go {local_go_directive()}", "",
             f"require k8s.io/kubernetes {version}", "", "replace ("]
    lines += [f"\t{m} => {m} v0.{minor}.{patch}" for m in staged]
    lines += [")", ""]
    write_if_changed(src / "go.mod", "\n".join(lines))
    pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in COMPONENTS["kubernetes"].binaries]
    write_if_changed(src / "tools.go", _tools_go(pkgs))
    b.run([go_bin(), "mod", "tidy"], src)
    ld = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ld += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
               f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean",
               f"-X {pkg}.buildDate=1970-01-01T00:00:00Z"]
    b.run([go_bin(), "build", "-trimpath", "-ldflags", " ".join(ld), "-o", str(b.out) + "/", *pkgs], src)


def build_etcd(b: BuildContext) -> None:
    # go.etcd.io/etcd/server/v3 replaces its sibling modules with ../api etc.; a wrapper module
    # requiring all of them at the same tag sidesteps that.
    src = cache_root() / "src" / f"etcd-{b.version}"
    mods = ["go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/client/pkg/v3",
            "go.etcd.io/etcd/client/v3", "go.etcd.io/etcd/pkg/v3"]
    lines = ["module agentroll.local/build/etcd", "", f"go {local_go_directive()}", "",
             "godebug default=go1.24", "", "require ("] + [f"\t{m} {b.version}" for m in mods] + [")", ""]
    write_if_changed(src / "go.mod", "\n".join(lines))
    write_if_changed(src / "tools.go", _tools_go(["go.etcd.io/etcd/server/v3"]))
    b.run([go_bin(), "mod", "tidy"], src)
    b.run([go_bin(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(b.out / "etcd"),
           "go.etcd.io/etcd/server/v3"], src)


def _extract_module_zip(zpath: Path, prefix: str, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with zipfile.ZipFile(zpath) as z:
        for m in z.infolist():
            if not m.filename.startswith(prefix) or m.is_dir():
                continue
            rel = m.filename[len(prefix):]
            if rel.startswith("/") or ".." in Path(rel).parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as fin, open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)


def _copy_module(info: dict, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(info["Dir"], dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for n in dirs + files:
            p = os.path.join(root, n)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o200)


def _argo_module(b: BuildContext) -> Path:
    """A private, writable copy of the Argo Rollouts module whose `go` line the local go accepts."""
    module = "github.com/argoproj/argo-rollouts"
    src = cache_root() / "src" / f"argo-rollouts-{b.version}"
    info = b.download(f"{module}@{b.version}")
    if info["_ok"]:
        _copy_module(info, src)
    elif info.get("Zip") and Path(info["Zip"]).is_file() and "requires go" in info.get("Error", ""):
        # With GOTOOLCHAIN=local, go downloads and verifies the zip but refuses to extract a module
        # whose go.mod asks for a newer go (v1.9.3: go 1.26.10).
        log(f"  note: {info['Error']}; extracting the verified module zip instead")
        _extract_module_zip(Path(info["Zip"]), f"{module}@{b.version}/", src)
    else:
        raise ClusterError(f"building {b.what}: cannot download {module}@{b.version} "
                           f"({info.get('Error', 'see log')}); see {b.logf.name}")
    gomod = src / "go.mod"
    text = gomod.read_text()
    m = re.search(r"^go (\S+)$", text, re.M)
    if m and _vtuple(m.group(1)) > _vtuple(local_go_directive()):
        # A patch-level go directive adds no language features: lower it rather than download
        # another toolchain.
        b.logf.write(f"\nNOTE: lowering go directive {m.group(1)} -> {local_go_directive()}\n")
        log(f"  note: argo-rollouts go.mod wants go {m.group(1)}; building with local {go_version()}")
        text = text[:m.start()] + f"go {local_go_directive()}" + text[m.end():]
        gomod.write_text(re.sub(r"^toolchain .*\n", "", text, flags=re.M))
    return src


def _argo_ldflags(version: str) -> str:
    return f"-s -w -X github.com/argoproj/argo-rollouts/utils/version.version={version.lstrip('v')}"


def build_argo_rollouts(b: BuildContext) -> None:
    src = _argo_module(b)  # built inside the module so its own replace directives and go.sum apply
    b.run([go_bin(), "build", "-trimpath", "-ldflags", _argo_ldflags(b.version),
           "-o", str(b.out / "rollouts-controller"), "./cmd/rollouts-controller"], src)
    crds = b.out / "crds"
    crds.mkdir(exist_ok=True)
    found = [f for f in sorted((src / "manifests" / "crds").glob("*.yaml")) if f.name != "kustomization.yaml"]
    if not found:
        raise ClusterError(f"building {b.what}: no CRDs under manifests/crds in the module")
    for f in found:
        shutil.copy(f, crds / f.name)


def build_argo_plugin(b: BuildContext) -> None:
    src = _argo_module(b)
    b.run([go_bin(), "build", "-trimpath", "-ldflags", _argo_ldflags(b.version),
           "-o", str(b.out / "kubectl-argo-rollouts"), "./cmd/kubectl-argo-rollouts"], src)


def build_kwok(b: BuildContext) -> None:
    b.install(f"sigs.k8s.io/kwok/cmd/kwok@{b.version}",
              f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={b.version}")
    info = b.download_or_fail(f"sigs.k8s.io/kwok@{b.version}")
    stage_src = Path(info["Dir"]) / "kustomize" / "stage"
    stages = b.out / "stages"
    stages.mkdir(exist_ok=True)
    # node/fast initialises a node; node/heartbeat-with-lease refreshes its status every ~10 minutes,
    # as a kubelet that heartbeats through its Lease does (kwok.py); pod/fast makes pods Ready.
    for sub in ("node/fast", "node/heartbeat-with-lease", "pod/fast"):
        files = [f for f in sorted((stage_src / sub).glob("*.yaml")) if f.name != "kustomization.yaml"]
        if not files:
            raise ClusterError(f"building {b.what}: no stage configs under kustomize/stage/{sub}")
        for f in files:
            shutil.copy(f, stages / f.name)


def build_helm(b: BuildContext) -> None:
    b.install(f"helm.sh/helm/v3/cmd/helm@{b.version}",
              f"-s -w -X helm.sh/helm/v3/internal/version.version={b.version}")


def build_prometheus(b: BuildContext) -> None:
    # Module tags v0.3xx.y are Prometheus 3.xx.y. `remove_all_sd` leaves only file and HTTP service
    # discovery (all we use) and halves the build; without `builtinassets` the web UI is not
    # embedded, the HTTP API is all there is.
    major_minor = _vtuple(b.version)
    release = f"3.{major_minor[1] - 300}.{major_minor[2]}"
    ld = (f"-s -w -X github.com/prometheus/common/version.Version={release} "
          f"-X github.com/prometheus/common/version.Branch=HEAD")
    b.install(f"github.com/prometheus/prometheus/cmd/prometheus@{b.version}", ld, tags="remove_all_sd")


@dataclass(frozen=True)
class Buildable:
    """A component of the cache: the versions.json key that pins it, its binaries, how to build it."""

    version_key: str
    binaries: tuple[str, ...]
    build: Callable[[BuildContext], None]


COMPONENTS: dict[str, Buildable] = {
    "kubernetes": Buildable("kubernetes", ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                           "kubectl"), build_kubernetes),
    "etcd": Buildable("etcd", ("etcd",), build_etcd),
    "argo-rollouts": Buildable("argo-rollouts", ("rollouts-controller",), build_argo_rollouts),
    "kubectl-argo-rollouts": Buildable("argo-rollouts", ("kubectl-argo-rollouts",), build_argo_plugin),
    "kwok": Buildable("kwok", ("kwok",), build_kwok),
    "helm": Buildable("helm", ("helm",), build_helm),
    "prometheus": Buildable("prometheus", ("prometheus",), build_prometheus),
}


def _complete(d: Path, comp: str) -> bool:
    return (d / ".complete").exists() and all((d / b).is_file() for b in COMPONENTS[comp].binaries)


def find_cached(comp: str, versions: dict[str, str] | None = None) -> Path | None:
    """A completed build dir for the pinned version, preferring the local go version."""
    version = (versions or load_versions())[COMPONENTS[comp].version_key]
    base = cache_root() / "bin" / comp / version
    if go_bin():
        with contextlib.suppress(ClusterError):
            d = base / go_version()
            if _complete(d, comp):
                return d
    if base.is_dir():  # any go version will do when go is absent or changed
        for d in sorted(base.iterdir(), reverse=True):
            if _complete(d, comp):
                return d
    return None


def everything_cached(components: list[str] | None = None) -> bool:
    try:
        versions = load_versions()
        return all(find_cached(c, versions) for c in components or COMPONENTS)
    except ClusterError:
        return False


@contextlib.contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Exclusive flock on path (serialises concurrent up/down/build runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another local-cluster {what} ({path})")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure_built(components: list[str] | None = None) -> dict[str, Path]:
    """Build what is missing; return {component: bin dir}."""
    wanted = list(components or COMPONENTS)
    versions = load_versions()
    if all(find_cached(c, versions) for c in wanted):
        return {c: find_cached(c, versions) for c in wanted}
    with file_lock(cache_root() / ".build.lock", "build"):
        return {c: find_cached(c, versions) or _build(c, versions) for c in wanted}


def _build(comp: str, versions: dict[str, str]) -> Path:
    spec = COMPONENTS[comp]
    version = versions[spec.version_key]
    out = cache_root() / "bin" / comp / version / go_version()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    logdir = cache_root() / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    logpath = logdir / f"build-{comp}-{version}.log"
    log(f"building {comp} {version} with {go_version()} (cold build; log: {logpath})")
    started = time.monotonic()
    with open(logpath, "w") as logf:
        spec.build(BuildContext(f"{comp} {version}", version, out, logf, started))
    for name in spec.binaries:
        if not (out / name).is_file():
            raise ClusterError(f"building {comp} {version}: {name} missing after build; see {logpath}")
    elapsed = time.monotonic() - started
    (out / ".complete").write_text(json.dumps({"seconds": round(elapsed, 1)}) + "\n")
    _record_build_time(comp, version, elapsed)
    log(f"built {comp} {version} in {elapsed:.0f}s -> {out}")
    return out


def _record_build_time(comp: str, version: str, seconds: float) -> None:
    path = cache_root() / "build-times.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[f"{comp}@{version}/{go_version()}"] = {
        "component": comp, "version": version, "go": go_version(), "seconds": round(seconds, 1),
        "cores": os.cpu_count(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
