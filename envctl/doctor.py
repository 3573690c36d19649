"""`envctl doctor`: what usually goes wrong, checked, each with how to fix it."""
from __future__ import annotations

import platform as platform_module
import shutil
import sys
from dataclasses import dataclass

from envctl.images import bootstrap, package_cache, platforms
from envctl.backend import engine as eng
from envctl.runtime import gc as gc_api
from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.errors import EnvctlError
from envctl.images.builder import host_ca_bundle
from envctl.topology import Topology

MIN_API = (1, 41)
# Docker's default address pools give about 31 bridge networks (172.17-31.x/16, 192.168.x/20).
DEFAULT_POOL_NETWORKS = 31


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """Every check's finding; it fails when any check failed (warnings pass)."""

    findings: list[Finding]

    def error(self) -> EnvctlError | None:
        """The error naming the failed checks, or None."""
        failed = [f for f in self.findings if f.status == "fail"]
        if not failed:
            return None
        return EnvctlError(f"{len(failed)} check(s) failed: " + ", ".join(f.check for f in failed),
                           fix="see the fix column above")


def diagnose(topology: Topology | None) -> list[Finding]:
    """Check the engine, storage, disk, address pool, platform, CA bundle and tools; with a
    topology, also its fixed ports and its stale and abandoned runs."""
    findings: list[Finding] = []
    try:
        engine = Engine.connect(timeout=15)
    except EnvctlError as exc:
        findings.append(Finding("engine", "fail", exc.message, exc.fix or ""))
        engine = None
    if engine is not None:
        findings += _engine_findings(engine)
        findings += _platform_findings(engine)
    findings += _host_findings(topology)
    if topology is not None and engine is not None:
        findings += _topology_findings(topology, engine)
    return findings


def _engine_findings(engine: Engine) -> list[Finding]:
    out = []
    version = engine.version()
    api = tuple(int(p) for p in version.get("ApiVersion", "0.0").split(".")[:2])
    out.append(Finding("engine", "ok" if api >= MIN_API else "warn",
                       f"Docker {version.get('Version')} (API {version.get('ApiVersion')})",
                       "" if api >= MIN_API else "upgrade the engine to API 1.41 (Docker 20.10) or newer"))
    info = engine.info()
    driver = info.get("Driver", "?")
    slow = {"vfs": "very slow builds and a full copy of every layer",
            "fuse-overlayfs": "slower builds: each metadata step (ENV, CMD, LABEL) costs seconds"}
    out.append(Finding("storage driver", "warn" if driver in slow else "ok", driver + (f": {slow[driver]}" if driver in slow else ""),
                       "use overlay2 where the kernel allows (storage-driver in /etc/docker/daemon.json)"
                       if driver in slow else ""))
    root = info.get("DockerRootDir", "/var/lib/docker")
    try:
        free = shutil.disk_usage(root).free / 1e9
        status = "fail" if free < 5 else ("warn" if free < 20 else "ok")
        out.append(Finding("free disk", status, f"{free:.0f} GB free under {root}",
                           "" if status == "ok" else "free space: 'envctl images --prune', 'docker image prune'"))
    except OSError:
        out.append(Finding("free disk", "warn", f"cannot see {root} from here (a remote engine?)"))
    bridges = [n for n in engine.networks() if n.get("Driver") == "bridge" and n.get("Name") != "bridge"]
    headroom = DEFAULT_POOL_NETWORKS - len(bridges)
    status = "fail" if headroom <= 0 else ("warn" if headroom < 5 else "ok")
    envctl_networks = sum(1 for n in bridges if (n.get("Labels") or {}).get(eng.MANAGED))
    out.append(Finding("address pool", status,
                       f"{len(bridges)} custom bridge networks ({envctl_networks} envctl's); room for about {max(headroom, 0)} more",
                       "" if status == "ok" else "remove stale runs ('envctl down --all', 'docker network prune') "
                       "or add default-address-pools in /etc/docker/daemon.json"))
    return out


def _platform_findings(engine: Engine) -> list[Finding]:
    """Where envctl runs and what it makes images for; how bases are bootstrapped here."""
    version, info = engine.version(), engine.info()
    engine_platform = platforms.of_engine(version)
    host = f"{sys.platform} {platform_module.machine() or '?'}"
    location, source = eng.engine_location()
    try:
        chosen = platforms.chosen(None, engine_platform)
    except EnvctlError as exc:
        return [Finding("platform", "fail", exc.message, exc.fix or "")]
    out = [Finding("platform", "ok", f"host {host}; engine {engine_platform} on {info.get('OperatingSystem', '?')} "
                   f"(at {location}, from {source}); images are made for {chosen}"
                   + ("" if chosen == engine_platform else " (emulated)"))]
    if bootstrap.where_it_runs() == "host":
        out.append(Finding("bootstrap", "ok", f"mmdebstrap on this host ({shutil.which('mmdebstrap')})"))
        return out
    debian = bootstrap.debian_on_engine(engine)
    out.append(Finding("bootstrap", "ok" if debian else "warn",
                       "mmdebstrap is not on this host: bases are bootstrapped in a container of "
                       + (debian or f"{bootstrap.PULLED_DEBIAN}, which has to be pulled first"),
                       "" if debian else f"make one available where a registry answers: 'docker pull "
                       f"{bootstrap.PULLED_DEBIAN}' (or set {bootstrap.TOOL_ENV} to a Debian image on the engine)"))
    return out


def _host_findings(topology: Topology | None) -> list[Finding]:
    out = []
    bundle = host_ca_bundle()
    out.append(Finding("host CA bundle", "ok" if bundle else "warn",
                       f"{bundle} (bases trust it)" if bundle else "none found",
                       "" if bundle else "behind a TLS-intercepting proxy, set ENVCTL_CA_BUNDLE to its CA bundle"))
    out.append(_package_cache_finding())
    dot = shutil.which("dot")
    out.append(Finding("graphviz", "ok" if dot else "warn", dot or "dot is not installed (envctl graph falls back to text)",
                       "" if dot else "apt-get install graphviz"))
    return out


def _package_cache_finding() -> Finding:
    """Where bootstraps keep the packages they download, and how much it holds."""
    root = package_cache.cache_root()
    if root is None:
        return Finding("package cache", "ok", f"off (${package_cache.ENV}); every bootstrap downloads its packages")
    problem = package_cache.unusable_reason(root)
    if problem:
        return Finding("package cache", "warn", f"{root} is not used: {problem}",
                       f"fix it, or set {package_cache.ENV}=DIR for another place ({package_cache.ENV}=off turns it off)")
    count, size = package_cache.PackageCache(root).size()
    return Finding("package cache", "ok", f"{root}: {count} packages, {size / 1e6:.0f} MB "
                   f"(reused by bootstraps on this host; 'envctl gc --package-cache' empties it)")


def _topology_findings(topology: Topology, engine: Engine) -> list[Finding]:
    out = []
    ours = {port for c in engine.containers({eng.PROJECT: topology.name}) for port in c.ports.values()}
    for name, service in topology.services.items():
        for port in service.ports:
            if port.host is None or port.host in ours:
                continue
            if not run_api.port_free(port.host, port.protocol, port.host_ip):
                out.append(Finding("fixed ports", "fail", f"host port {port.host} of '{name}' is taken",
                                   f"free it ('ss -ltnp | grep :{port.host}') or change services.{name}.ports"))
    if not any(f.check == "fixed ports" for f in out):
        fixed = sum(1 for s in topology.services.values() for p in s.ports if p.host)
        out.append(Finding("fixed ports", "ok", f"{fixed} fixed host ports, all free (or held by this project)"))
    stale = []
    for run in teardown.project_runs(engine, topology.name):
        containers = engine.containers(eng.run_labels(topology.name, run))
        if not any(c.running for c in containers):
            stale.append(run)
    out.append(Finding("stale runs", "warn" if stale else "ok",
                       f"runs with nothing running: {', '.join(stale)}" if stale else "none",
                       f"remove them: envctl --run {stale[0]} down (or envctl down --all)" if stale else ""))
    abandoned = [f"{found.project}/{found.run}" for found in gc_api.find_runs(engine) if found.verdict]
    out.append(Finding("abandoned runs", "warn" if abandoned else "ok",
                       f"runs whose owner is gone or whose time ran out: {', '.join(abandoned)}" if abandoned
                       else "none (any project)", "remove them: envctl gc" if abandoned else ""))
    return out
