"""Bootstrapping a base's root filesystem with mmdebstrap: on the host, or in a throw-away container.

Linux hosts with mmdebstrap run it directly. Elsewhere (macOS, Windows, a Linux host
without it) the same mmdebstrap command runs in a container made from a Debian image: one
already on the engine (the project's own bootstrapped bases are Debian), or `debian` pulled
where a registry answers. The tool image is made once per engine and kept; the container
making a root filesystem is removed after. Both ways give the same files (see
tests/integration/test_bootstrap.py for what differs and why).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from envctl.backend import engine as labels
from envctl.images import package_cache, platforms, registry
from envctl.backend.engine import Engine
from envctl.errors import BootstrapToolMissing, BuildFailed, Cancelled, EnvctlError, RegistryError
from envctl.topology import Bootstrap

TOOL_ENV = "ENVCTL_BOOTSTRAP_IMAGE"  # a Debian image to make the tool image from (skips the search)
TOOL_REPOSITORY = "envctl/bootstrap-tool"
TOOL_KIND = "bootstrap-tool"
TOOL_PACKAGES = ("mmdebstrap", "arch-test", "qemu-user-static")  # the last two for other architectures
PULLED_DEBIAN = "debian:bookworm-slim"
OUTPUT = "/tmp/rootfs.tar"

# What Debian's own container images configure (debuerreotype's minimizing config), so that
# package builds on a bootstrapped base run as fast as on theirs: dpkg does not fsync every file
# it unpacks (costly on overlay file systems; an image build that dies is built again anyway);
# apt fetches no translated package descriptions, keeps its package lists gzipped as fetched
# rather than unpacked, and writes no binary cache of them (each saves writing tens of MB
# through the storage driver in every `apt-get` step). mmdebstrap uses them for the bootstrap
# too and keeps them in the base: /etc/dpkg/dpkg.cfg.d/99mmdebstrap, /etc/apt/apt.conf.d/99mmdebstrap.
DPKG_OPTIONS = ("force-unsafe-io",)
APT_OPTIONS = ('Acquire::Languages "none"', 'Acquire::GzipIndexes "true"', 'Acquire::CompressionTypes::Order:: "gz"',
               'Dir::Cache::pkgcache ""', 'Dir::Cache::srcpkgcache ""')
RECIPE = {"dpkg": DPKG_OPTIONS, "apt": APT_OPTIONS}  # part of a bootstrapped base's content hash

# Where mmdebstrap makes the root filesystem on the host (its TMPDIR). dpkg writes, renames and
# mmdebstrap then deletes tens of thousands of small files there: in memory that takes about
# 17 s for the reference stack's base where a disk took 20 to 30 s (bench/bootstrap_phases.py).
# The tarball it writes goes where the caller says, wherever the work happens.
WORK_ENV = "ENVCTL_BOOTSTRAP_TMPDIR"  # a directory to use instead (a disk one where memory is short)
IN_MEMORY = Path("/dev/shm")
ROOM_NEEDED = 4 << 30  # bytes: free on the tmpfs and in memory before a bootstrap works there


def mmdebstrap_arguments(spec: Bootstrap, platform: str, output: str) -> list[str]:
    """mmdebstrap's arguments (after the program's name), the same on the host and in a container."""
    arguments = [f"--variant={spec.variant}", "--format=tar", f"--architectures={platforms.debian_architecture(platform)}"]
    if spec.variant != "extract":  # 'extract' only unpacks: no dpkg, no apt, nothing to configure
        arguments += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
        arguments += [f"--aptopt={option}" for option in APT_OPTIONS]
    if spec.packages:
        arguments.append("--include=" + ",".join(spec.packages))
    arguments += [spec.suite, output]
    if spec.mirror:
        arguments.append(spec.mirror)
    return arguments


def where_it_runs() -> str:
    """'host' where mmdebstrap is on PATH of a Linux host, else 'container'."""
    return "host" if sys.platform.startswith("linux") and shutil.which("mmdebstrap") else "container"


def bootstrap(engine: Engine, spec: Bootstrap, platform: str, tarball: Path, log: IO[str], what: str,
              cancel: threading.Event, warn: package_cache.Warn | None = None) -> str:
    """Write the root filesystem `spec` describes for `platform` to `tarball`; returns where it ran.

    On the host, packages come from and go to the per-user package cache (see package_cache).
    """
    where = where_it_runs()
    if where == "host":
        _on_host(spec, platform, tarball, log, what, cancel, warn or _log_warning(log))
        return where
    tool = tool_image(engine, log, cancel)
    log.write(f"envctl: mmdebstrap is not on this host; running it in a container of {tool} "
              "(without the package cache)\n")
    log.flush()
    engine.run_for_file(tool, ["mmdebstrap", *mmdebstrap_arguments(spec, platform, OUTPUT)], OUTPUT, tarball,
                        log=log, what=what, cancel=cancel)
    return where


def _on_host(spec: Bootstrap, platform: str, tarball: Path, log: IO[str], what: str, cancel: threading.Event,
             warn: package_cache.Warn) -> None:
    cache = package_cache.open_cache(warn)
    with package_cache.session_for(cache, warn) as session:
        hooks = package_cache.mmdebstrap_hooks(str(session.inbox), str(session.outbox)) if session else []
        command = [shutil.which("mmdebstrap") or "mmdebstrap", *hooks, *mmdebstrap_arguments(spec, platform, str(tarball))]
        if session is not None:
            log.write(f"envctl: {len(session.reused)} packages from the package cache {session.cache.root}\n")
        returncode, work, log_lines = _run_where_there_is_room(command, log, cancel, what, warn)
        if returncode != 0:
            raise BuildFailed(f"bootstrapping {what} failed{_out_of_memory_room(work, log_lines)}; the last lines:\n"
                              + "\n".join("    " + line for line in log_lines[-12:]))
        if session is not None and package_cache.GIVE_BACK_FAILED in log_lines:
            session.outbox_whole = False
            package_cache.warn_once(session.cache.root, "copying packages into it failed (is its disk full?)", warn)
    if session is not None:
        log.write(f"envctl: {len(session.published)} packages added to the package cache\n")


def _run_where_there_is_room(command: list[str], log: IO[str], cancel: threading.Event, what: str,
                             warn: package_cache.Warn) -> tuple[int, str | None, list[str]]:
    """Run mmdebstrap in its work directory; where envctl chose /dev/shm and it filled up (other bootstraps,
    or a big base), once more on disk. Returns the exit code, the directory of the last run, the log."""
    work = work_directory()
    returncode = _run_mmdebstrap(command, work, log, cancel, what)
    log_lines = _log_lines(log)
    if returncode != 0 and work == str(IN_MEMORY) and not _chosen_work() and _out_of_room(log_lines):
        warn(f"{IN_MEMORY} ran out of room bootstrapping {what}: bootstrapping it again on disk")
        log.write(f"envctl: {IN_MEMORY} ran out of room; bootstrapping again in the default temporary directory\n")
        work = None
        returncode = _run_mmdebstrap(command, work, log, cancel, what)
        log_lines = _log_lines(log)
    return returncode, work, log_lines


def _run_mmdebstrap(command: list[str], work: str | None, log: IO[str], cancel: threading.Event, what: str) -> int:
    """mmdebstrap's exit code, run with TMPDIR `work` (None: its default); a cancelled run raises."""
    if work is not None:
        log.write(f"envctl: making the root filesystem under {work}\n")
    log.flush()
    returncode = run_cancellable(command, log, cancel, {**os.environ, "TMPDIR": work} if work else None)
    if returncode is None:
        raise Cancelled(f"bootstrapping {what} was cancelled")
    return returncode


def _log_lines(log: IO[str]) -> list[str]:
    log.flush()
    return Path(log.name).read_text(errors="replace").strip().splitlines()


def work_directory(environ: Mapping[str, str] = os.environ) -> str | None:
    """mmdebstrap's TMPDIR: $ENVCTL_BOOTSTRAP_TMPDIR, else /dev/shm where it has room, else None (its default).

    /dev/shm serves only when chroots work there (neither noexec nor nodev: the chroot runs
    its binaries and opens its /dev/null) and both it and the machine's memory have
    ROOM_NEEDED to spare: a tmpfs holds its files in memory.
    """
    chosen = _chosen_work(environ)
    if chosen:
        return _checked_work(chosen)
    try:
        room = os.statvfs(IN_MEMORY)
    except OSError:
        return None
    usable = not room.f_flag & (os.ST_NOEXEC | os.ST_NODEV | os.ST_RDONLY) and os.access(IN_MEMORY, os.W_OK)
    if usable and room.f_bavail * room.f_frsize >= ROOM_NEEDED and _memory_available() >= ROOM_NEEDED:
        return str(IN_MEMORY)
    return None


def _chosen_work(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(WORK_ENV, "").strip()


def _checked_work(chosen: str) -> str:
    """$ENVCTL_BOOTSTRAP_TMPDIR as an absolute path, if mmdebstrap can work there: a directory it can
    write that apt's `_apt` user can reach too (apt drops to it to download; in unshare mode it is a
    subordinate id), which takes other-execute on the directory and on every parent."""
    path = Path(chosen).absolute()
    place = f"${WORK_ENV} is {chosen}"
    elsewhere = "or unset it, or set it to a directory under /tmp"
    if not path.is_dir():
        problem = "it does not exist" if not path.exists() else "it is not a directory"
        raise EnvctlError(f"{place}: {problem}", fix=f"create it (mkdir -p {path}), {elsewhere}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise EnvctlError(f"{place}: envctl cannot write there", fix=f"make it writable for this user, {elsewhere}")
    closed = [str(p) for p in _untraversable(path.resolve())]
    if closed:
        raise EnvctlError(f"{place}: apt's _apt user, which mmdebstrap's apt downloads as, cannot reach it "
                          f"({', '.join(closed)} not searchable by others)",
                          fix=f"chmod o+x {' '.join(closed)}, {elsewhere}")
    return str(path)


def _untraversable(path: Path) -> list[Path]:
    """`path` and its parents that others may not search (no other-execute), outermost first."""
    return [p for p in reversed([path, *path.parents]) if not os.stat(p).st_mode & stat.S_IXOTH]


def _out_of_room(log_lines: list[str]) -> bool:
    return any("No space left on device" in line or "ENOSPC" in line for line in log_lines)


def _out_of_memory_room(work: str | None, log_lines: list[str]) -> str:
    """What to do when the tmpfs filled up under the bootstrap (other bootstraps, or a big base)."""
    if work == str(IN_MEMORY) and _out_of_room(log_lines):
        return f" ({IN_MEMORY} ran out of room: set {WORK_ENV}=/var/tmp to bootstrap on disk)"
    return ""


def _memory_available() -> int:
    """MemAvailable in bytes (0 where /proc/meminfo does not say)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _log_warning(log: IO[str]) -> package_cache.Warn:
    return lambda message: log.write(f"envctl: warning: {message}\n")


# -- the tool image ----------------------------------------------------------------------------

def tool_image(engine: Engine, log: IO[str], cancel: threading.Event) -> str:
    """The image with mmdebstrap in it, made (once per source image) from a Debian image."""
    source = _debian_image(engine, log)
    source_id = engine.image_id(source) or source
    tag = hashlib.sha256(f"{source_id} {' '.join(TOOL_PACKAGES)}".encode()).hexdigest()[:16]
    ref = f"{TOOL_REPOSITORY}:{tag}"
    if engine.image_id(ref) is not None:
        return ref
    log.write(f"envctl: making the bootstrap tool image {ref} from {source}\n")
    install = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
               + " ".join(TOOL_PACKAGES) + " && apt-get clean && rm -rf /var/lib/apt/lists/*")
    label = "LABEL " + " ".join(f'"{k}"="{v}"' for k, v in
                                ((labels.MANAGED, "true"), (labels.IMAGE_KIND, TOOL_KIND)))
    engine.run_step(source, ["/bin/sh", "-c", install], mounts=[], changes=[label], log=log,
                    what=f"the bootstrap tool image (from {source})", cancel=cancel,
                    repository=TOOL_REPOSITORY, tag=tag)
    return ref


def _debian_image(engine: Engine, log: IO[str]) -> str:
    """A Debian image of the engine's own platform: $ENVCTL_BOOTSTRAP_IMAGE, one on the engine, or pulled."""
    chosen = os.environ.get(TOOL_ENV)
    if chosen:
        registry.ensure_pulled(engine, chosen, "missing", lambda line: log.write(line + "\n"), what=f"${TOOL_ENV}")
        return chosen
    found = debian_on_engine(engine)
    if found:
        return found
    try:
        registry.pull(engine, PULLED_DEBIAN, lambda line: log.write(line + "\n"), attempts=2)
    except RegistryError as exc:
        raise BootstrapToolMissing(
            "mmdebstrap is not on this host, and there is no Debian image on the Docker engine to run it in "
            f"(pulling {PULLED_DEBIAN} failed: {exc.message})",
            fix=f"make one available: 'docker pull {PULLED_DEBIAN}' where a registry answers (or 'docker load' "
            f"one), or name any Debian image on the engine with {TOOL_ENV}=NAME; on Debian or Ubuntu, "
            "'sudo apt-get install mmdebstrap' also does") from None
    return PULLED_DEBIAN


def debian_on_engine(engine: Engine) -> str | None:
    """A Debian image of the engine's own platform already on the engine, if there is one."""
    native = platforms.of_engine(engine.version())
    for ref in _debian_candidates(engine):
        if platforms.of_image(engine.inspect_image(ref)) == native and _runs_apt(engine, ref):
            return ref
    return None


def _runs_apt(engine: Engine, ref: str) -> bool:
    """Whether `ref` has a shell and apt: a root filesystem of mmdebstrap's 'extract' or 'custom'
    variant (a static busybox, say) is Debian's but cannot install the tool's packages."""
    with engine.path_kinds(ref) as kind:
        return all(kind(path) is not None for path in ("/bin/sh", "/usr/bin/apt-get"))


def _debian_candidates(engine: Engine) -> list[str]:
    """Debian images the engine has: envctl's own root filesystems first (bootstraps of Debian), then debian:*."""
    refs: list[str] = []
    for image in [*engine.images({labels.IMAGE_KIND: "rootfs"}), *engine.images_named("debian")]:
        refs += [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    return list(dict.fromkeys(refs))


# -- on the host --------------------------------------------------------------------------------

def run_cancellable(command: list[str], log: IO[str], cancel: threading.Event,
                    env: Mapping[str, str] | None = None) -> int | None:
    """Run `command` (in its own process group, with `env` or ours) to the end; None if `cancel` stopped it first."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, env=env)
    while True:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set():
            # mmdebstrap runs apt and dpkg below it: stop the whole group, then make sure.
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=grace)
                    return None
                except ProcessLookupError:
                    return None
                except subprocess.TimeoutExpired:
                    continue
            return None

