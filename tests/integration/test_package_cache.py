"""The package cache with the real mirror: a second bootstrap downloads no package, gives the same
root filesystem, and the root filesystem holds no cached .deb; a corrupt entry is fetched again.

mmdebstrap runs on the host here (the cache is a host directory); a shim adds --verbose so
apt's own "Get:" lines say what it downloaded.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from envctl.images import bootstrap, package_cache
from envctl.topology import Bootstrap

from .rootfs_content import differences

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("mmdebstrap") is None,
                       reason="the package cache serves mmdebstrap on a Linux host; this one has none"),
]

# The smallest base that is still installed by dpkg: the Essential:yes set plus one package.
TINY = Bootstrap(distro="debian", suite="bookworm", packages=("hello",), variant="essential")
HOST_PLATFORM = "linux/arm64" if os.uname().machine in ("aarch64", "arm64") else "linux/amd64"
# apt's line for a package it downloads: "Get:7 URL SUITE/COMPONENT ARCH NAME ARCH VERSION [SIZE]";
# an index line has fewer fields ("Get:4 URL bookworm/main amd64 Packages [8790 kB]").
PACKAGE_DOWNLOAD = re.compile(r"^Get:\d+ \S+ \S+ \S+ (\S+) \S+ \S+ \[", re.MULTILINE)


@pytest.fixture
def verbose_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = tmp_path / "bin" / "mmdebstrap"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shutil.which("mmdebstrap")} --verbose "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")


def bootstrapped(tmp_path: Path, name: str) -> tuple[Path, str]:
    """Bootstrap TINY into NAME.tar; returns the tarball and the log."""
    tarball, log_path = tmp_path / f"{name}.tar", tmp_path / f"{name}.log"
    with open(log_path, "w") as log:
        where = bootstrap.bootstrap(None, TINY, HOST_PLATFORM, tarball, log, name, threading.Event(),  # type: ignore[arg-type]
                                    warn=pytest.fail)
    assert where == "host"
    return tarball, log_path.read_text()


def cached_debs_in(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return [m.name for m in tar if m.name.endswith(".deb")]


def text_in(tarball: Path, name: str) -> str:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"./{name}")
        assert member is not None
        return member.read().decode()


def test_a_second_bootstrap_takes_every_package_from_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verbose_mmdebstrap: None) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv(package_cache.ENV, str(root))
    cache = package_cache.PackageCache(root)

    cold, cold_log = bootstrapped(tmp_path, "cold")
    downloaded = PACKAGE_DOWNLOAD.findall(cold_log)
    count, _ = cache.size()
    assert downloaded and count == len(downloaded), "the first bootstrap fills the cache with what apt downloaded"
    assert f"envctl: {count} packages added to the package cache" in cold_log

    warm, warm_log = bootstrapped(tmp_path, "warm")
    assert PACKAGE_DOWNLOAD.findall(warm_log) == [], "the second bootstrap downloads no package"
    assert f"envctl: {count} packages from the package cache" in warm_log
    assert "envctl: 0 packages added to the package cache" in warm_log

    assert cached_debs_in(cold) == [] and cached_debs_in(warm) == [], "no .deb in the root filesystem"
    assert differences(cold, warm) == [], "the cache changes nothing in the root filesystem"
    assert list(cache.runs.iterdir()) == [], "each bootstrap's work directory is gone"
    # what Debian's own container images set for package builds (docs/topology.md, "Bases")
    assert text_in(cold, "etc/dpkg/dpkg.cfg.d/99mmdebstrap").split() == list(bootstrap.DPKG_OPTIONS)
    assert all(option in text_in(cold, "etc/apt/apt.conf.d/99mmdebstrap") for option in bootstrap.APT_OPTIONS)

    # apt takes a same-size file in its archive as it is; the cache drops it so apt fetches it again.
    victim = cache.debs / next(name for name in sorted(os.listdir(cache.debs)) if name.startswith("hello_"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    _, repaired_log = bootstrapped(tmp_path, "repaired")
    assert PACKAGE_DOWNLOAD.findall(repaired_log) == ["hello"]
    assert "envctl: 1 packages added to the package cache" in repaired_log
    assert package_cache.sha256(victim) == (victim.parent / (victim.name + package_cache.DIGEST_SUFFIX)).read_text().strip()
