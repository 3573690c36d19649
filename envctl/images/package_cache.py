"""A per-user cache of the .deb files bootstraps download, reused by later bootstraps on this machine.

Where: $ENVCTL_PACKAGE_CACHE, else $XDG_CACHE_HOME/envctl/apt, else ~/.cache/envctl/apt;
ENVCTL_PACKAGE_CACHE=off turns it off. mmdebstrap takes the cache in and gives it back
through hooks (after the sync-in/sync-out recipe in `man mmdebstrap`, EXAMPLES): a setup hook
copies the cached .debs into the chroot's /var/cache/apt/archives before apt downloads, a
customize hook copies out what apt used after it installed, and `--skip=essential/unlink`
keeps the essential packages there until then. mmdebstrap's cleanup then empties /var/cache/apt/archives, so
the image holds no cached .deb.

apt trusts a file already in /var/cache/apt/archives when its size is right (it checks no
hash), so the cache keeps the SHA-256 of each .deb as apt verified it on download and hands
mmdebstrap only entries that still match: a corrupt or truncated entry is dropped, and apt
downloads that package again. Each bootstrap works in its own directory under runs/, and a
.deb joins debs/ by write-then-rename, so concurrent bootstraps (two CI jobs) never see half
a file. Only the owner may write the cache (as with apt's own archive, which only root may).
A cache that cannot be used (unwritable, full, shared with others) warns once and the
bootstrap downloads as if there were no cache; it never fails a run.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ENV = "ENVCTL_PACKAGE_CACHE"
OFF_WORDS = frozenset({"off", "0", "no", "false", "none", "disabled"})
ARCHIVES = "/var/cache/apt/archives"
DIGEST_SUFFIX = ".sha256"
ABANDONED_AFTER = 24 * 3600  # seconds; no bootstrap takes that long

Warn = Callable[[str], None]
_warned: set[str] = set()  # one warning per cache and problem in a process, however many bootstraps


def cache_root(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where the cache lives, or None when $ENVCTL_PACKAGE_CACHE turns it off."""
    chosen = environ.get(ENV, "").strip()
    if chosen.lower() in OFF_WORDS:
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "envctl" / "apt"


@dataclass(frozen=True)
class PackageCache:
    """The cache directory: debs/ holds verified .debs (each with NAME.sha256), runs/ each bootstrap's work."""

    root: Path

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def size(self) -> tuple[int, int]:
        """(number of .debs, bytes) in the cache."""
        files = list(self.debs.glob("*.deb")) if self.debs.is_dir() else []
        return len(files), sum(_size(f) for f in files)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def unusable_reason(root: Path) -> str | None:
    """Why this process may not use `root` as a cache (None if it may); creates it if missing."""
    try:
        for directory in (root, root / "debs", root / "runs"):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = root.stat()
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return "another user owns it (only its owner's bootstraps may fill it)"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "others may write to it (chmod go-w it)"
        with tempfile.NamedTemporaryFile(dir=root / "runs", prefix="probe-"):
            pass
    except OSError as exc:
        return f"it cannot be written ({exc.strerror or exc})"
    return None


def warn_once(root: Path, problem: str, warn: Warn) -> None:
    message = (f"the package cache {root} is not used: {problem}; bootstraps download every package "
               f"(set {ENV}=off to silence this, or {ENV}=DIR for another place)")
    if message not in _warned:
        _warned.add(message)
        warn(message)


def open_cache(warn: Warn, environ: Mapping[str, str] = os.environ) -> PackageCache | None:
    """The cache for this user, or None when it is turned off or cannot be used (warned once)."""
    root = cache_root(environ)
    if root is None:
        return None
    problem = unusable_reason(root)
    if problem:
        warn_once(root, problem, warn)
        return None
    return PackageCache(root)


# -- one bootstrap's use of the cache -------------------------------------------------------------

@dataclass
class Session:
    """One bootstrap's view: `inbox` (what mmdebstrap syncs in) and `outbox` (what it syncs out)."""

    cache: PackageCache
    work: Path
    reused: list[str] = field(default_factory=list)  # cached .debs handed to this bootstrap
    published: list[str] = field(default_factory=list)  # .debs this bootstrap added to the cache
    outbox_whole: bool = True  # False when copying out failed midway: its files may be cut short

    @property
    def inbox(self) -> Path:
        return self.work / "in"

    @property
    def outbox(self) -> Path:
        return self.work / "out"


GIVE_BACK_FAILED = "envctl: giving packages back to the package cache failed"


def mmdebstrap_hooks(inbox: str, outbox: str) -> list[str]:
    """mmdebstrap's options that copy the cache in before apt downloads and copy it out after.

    Plain `cp` rather than mmdebstrap's sync-in/sync-out hooks: a failed copy (a full disk)
    must not fail the bootstrap; apt then simply downloads, and the run goes on uncached.
    """
    chroot_archives = f'"$1"{ARCHIVES}/'
    return [
        "--skip=essential/unlink",  # keep the essential .debs until the customize hook copies them out
        f"--setup-hook=mkdir -p {chroot_archives} && for f in {shlex.quote(inbox)}/*.deb; do "
        f'[ ! -e "$f" ] || cp -p "$f" {chroot_archives} || break; done; true',
        f"--customize-hook=for f in {chroot_archives}*.deb; do [ ! -e \"$f\" ] || cp -p \"$f\" "
        f"{shlex.quote(outbox)}/ || {{ echo '{GIVE_BACK_FAILED}'; break; }}; done; true",
    ]


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _recorded_digest(deb: Path) -> str | None:
    try:
        return (deb.parent / (deb.name + DIGEST_SUFFIX)).read_text().strip() or None
    except OSError:
        return None


def verified_entries(cache: PackageCache) -> Iterator[Path]:
    """The cached .debs whose content still has the digest recorded when apt verified it; others are dropped."""
    for deb in sorted(cache.debs.glob("*.deb")):
        recorded = _recorded_digest(deb)
        try:
            intact = recorded is not None and sha256(deb) == recorded
        except OSError:
            intact = False
        if intact:
            yield deb
        else:  # apt would take a same-size corrupt file as it is; drop it so apt downloads it again
            for path in (deb, deb.parent / (deb.name + DIGEST_SUFFIX)):
                path.unlink(missing_ok=True)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # cheap and safe: entries are replaced by rename, never written in place
    except OSError:
        shutil.copy2(source, target)


def _remove_abandoned_runs(cache: PackageCache) -> None:
    """Work directories of bootstraps killed midway (SIGKILL) a day ago or more: nobody uses them now."""
    for work in cache.runs.glob("bootstrap-*"):
        with contextlib.suppress(OSError):
            if time.time() - work.stat().st_mtime > ABANDONED_AFTER:
                shutil.rmtree(work, ignore_errors=True)


def begin(cache: PackageCache) -> Session:
    """A session whose inbox holds every verified cached .deb."""
    _remove_abandoned_runs(cache)
    work = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=cache.runs))
    session = Session(cache, work)
    session.inbox.mkdir()
    session.outbox.mkdir()
    for deb in verified_entries(cache):
        _link_or_copy(deb, session.inbox / deb.name)
        session.reused.append(deb.name)
    return session


def publish(session: Session) -> None:
    """Add the .debs the bootstrap used that the cache lacks: digest first, then the file, each by rename."""
    have = set(session.reused)
    for deb in sorted(session.outbox.glob("*.deb")):
        if deb.name in have or not deb.is_file() or (session.cache.debs / deb.name).exists():
            continue  # another bootstrap (at the same time) added it already
        _replace_text(session.cache.debs / (deb.name + DIGEST_SUFFIX), sha256(deb) + "\n")
        os.replace(deb, session.cache.debs / deb.name)  # outbox and debs/ share a file system: a rename
        session.published.append(deb.name)


def _replace_text(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def session_for(cache: PackageCache | None, warn: Warn) -> Iterator[Session | None]:
    """A session over `cache` (None if there is none); publishes when the bootstrap succeeded, always cleans up.

    A cache that fails midway (disk full, removed) warns once and the bootstrap goes on without it.
    """
    if cache is None:
        yield None
        return
    try:
        session: Session | None = begin(cache)
    except OSError as exc:
        warn_once(cache.root, f"taking packages from it failed ({exc.strerror or exc})", warn)
        session = None
    try:
        yield session
        if session is not None and session.outbox_whole:
            try:
                publish(session)
            except OSError as exc:
                warn_once(cache.root, f"adding packages to it failed ({exc.strerror or exc})", warn)
    finally:
        if session is not None:
            shutil.rmtree(session.work, ignore_errors=True)


def prune(cache: PackageCache) -> tuple[int, int]:
    """Empty the cache (the next bootstrap downloads again); returns (.debs removed, bytes freed)."""
    count, size = cache.size()
    shutil.rmtree(cache.debs, ignore_errors=True)
    cache.debs.mkdir(parents=True, exist_ok=True, mode=0o700)
    return count, size
