"""Laptops as people have them: bootstraps without mmdebstrap on the host, arm64 beside amd64, one cache for both.

The arm64 test runs arm64 programs under qemu-user-static (binfmt_misc), as Docker Desktop
does on its own; it is skipped, saying why, where the engine cannot.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from envctl.images import bootstrap
from envctl.backend import engine as eng
from envctl.backend.engine import Engine
from envctl.topology.imageref import parse_registry_location
from envctl.images.builder import ImageBuilder
from envctl.images.registry import ImageCache
from envctl.topology import load_topology

from .conftest import PROJECT, STACK
from .registries import Registry
from .rootfs_content import differences

pytestmark = pytest.mark.integration

ARM64 = "linux/arm64"
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def engine_runs_arm64(engine: Engine) -> bool:
    version = engine.version()
    if version.get("Arch") in ("arm64", "aarch64"):
        return True
    # A local Linux engine shares this kernel: its binfmt_misc says whether qemu is registered.
    return version.get("Os") == "linux" and BINFMT_AARCH64.is_file() and "enabled" in BINFMT_AARCH64.read_text()


@pytest.fixture(scope="module")
def tool_image_removed_afterwards(engine: Engine):
    """Remove the bootstrap tool image if this module made it (a laptop keeps it; the test host need not).

    Made once for both tests here, as a laptop makes it once and keeps it."""
    before = {image["Id"] for image in engine.images({eng.IMAGE_KIND: bootstrap.TOOL_KIND})}
    yield
    for image in engine.images({eng.IMAGE_KIND: bootstrap.TOOL_KIND}):
        if image["Id"] not in before:
            for ref in image.get("RepoTags") or [image["Id"]]:
                engine.remove_image(ref)


# The bootstrap without mmdebstrap, in a process of its own (PATH is per process, as on a machine
# without it), runs while the test bootstraps on the host: one mostly waits for the mirror and the
# engine while the other unpacks.
IN_A_CONTAINER = """
import sys, threading
from pathlib import Path
from envctl.backend.engine import Engine
from envctl.images import bootstrap
from envctl.topology import load_topology
stack, platform, tarball, log_path = sys.argv[1:]
spec = load_topology(Path(stack) / "envctl.yaml", environ={}).bases["os"].bootstrap
with open(log_path, "w") as log:
    print(bootstrap.bootstrap(Engine.connect(), spec, platform, Path(tarball), log, "in a container", threading.Event()))
"""


def test_a_bootstrap_without_mmdebstrap_on_the_host_gives_the_same_root_filesystem(
        engine: Engine, session_images: None, tmp_path: Path, tool_image_removed_afterwards: None) -> None:
    # session_images: the Debian image the tool image is made from is the session's base (no registry here).
    spec = load_topology(STACK / "envctl.yaml", environ={}).bases["os"].bootstrap
    assert spec is not None
    platform = f"linux/{engine.version()['Arch']}"
    no_tools = {**os.environ, "PATH": str(tmp_path / "no-tools")}  # as on macOS or Windows: no mmdebstrap
    in_container = subprocess.Popen(
        [sys.executable, "-c", IN_A_CONTAINER, str(STACK), platform, str(tmp_path / "container.tar"),
         str(tmp_path / "container.log")], env=no_tools, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with open(tmp_path / "host.log", "w") as log:
            where = bootstrap.bootstrap(engine, spec, platform, tmp_path / "host.tar", log, "on the host",
                                        threading.Event())
    finally:
        output, errors = in_container.communicate(timeout=1500)
    assert where == "host"
    assert in_container.returncode == 0 and output.strip() == "container", errors
    assert "running it in a container" in (tmp_path / "container.log").read_text()

    assert differences(tmp_path / "host.tar", tmp_path / "container.tar") == []
    leftovers = [c for c in engine.api.containers(all=True, filters={"ancestor": bootstrap.TOOL_REPOSITORY})]
    assert leftovers == [], "the throw-away bootstrap container must be removed"


def image_platform(engine: Engine, ref: str) -> tuple[str, str]:
    info = engine.inspect_image(ref)
    return f"{info['Os']}/{info['Architecture']}", (info["Config"].get("Labels") or {}).get(eng.PLATFORM, "")


def machine_in(engine: Engine, ref: str) -> str:
    output = engine.client.containers.run(ref, ["busybox", "uname", "-m"], remove=True)
    return output.decode().strip()


# The base for both architectures here: a static busybox, unpacked from Debian's packages for the
# platform (mmdebstrap's 'extract' variant, as the swarm tests' base). What the test proves is about
# platforms (per-image platform, content hashes per architecture, one cache serving each its own,
# arm64 programs running under emulation), which the stack's python3 base proves no better: its
# dpkg maintainer scripts run under qemu for minutes (an 'essential' base still took two).
SMALL_BASE = "bootstrap: {distro: debian, suite: bookworm, variant: extract, packages: [busybox-static]}"


def with_small_base(stack_dir: Path) -> None:
    path = stack_dir / "envctl.yaml"
    text = path.read_text()
    line = "bootstrap: {distro: debian, suite: bookworm, packages: [python3, ca-certificates]}"
    assert line in text
    path.write_text(text.replace(line, SMALL_BASE))


# An arm64 bootstrap of a static busybox: seconds; the timeout is for a machine under heavy load.
@pytest.mark.timeout(1800)
def test_arm64_images_beside_amd64_ones_and_one_cache_serving_each_its_own(
        engine: Engine, stack_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tool_image_removed_afterwards: None) -> None:
    if not engine_runs_arm64(engine):
        pytest.skip("the engine cannot run linux/arm64 programs: no qemu-aarch64 in binfmt_misc "
                    "(.ci/setup installs qemu-user-static and registers it)")
    native = f"linux/{engine.version()['Arch']}"
    with_small_base(stack_dir)
    topology = load_topology(stack_dir / "envctl.yaml", environ={})
    # As on an Intel Mac building for Apple Silicon: no mmdebstrap, another architecture.
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    server = Registry(tmp_path / "registry")
    try:
        cache = ImageCache(engine, parse_registry_location(f"{server.host}/ci"), tmp_path / "from-cache.json")
        # Both architectures built (or found) and put into one cache.
        arm = ImageBuilder(topology, engine, platform=ARM64, cache=cache, fill_cache=True).ensure(["store"])
        assert "running it in a container" in (stack_dir / ".envctl" / "builds" / "base-os.log").read_text()
        amd = ImageBuilder(topology, engine, cache=cache, fill_cache=True).ensure(["store"])
        for key in ("base:os", "service:store"):
            assert arm[key].ref != amd[key].ref, f"{key}: one content hash for two architectures"
            assert image_platform(engine, arm[key].ref) == (ARM64, ARM64)
            assert image_platform(engine, amd[key].ref) == (native, native)
        assert machine_in(engine, arm["service:store"].ref) == "aarch64"
        assert machine_in(engine, amd["service:store"].ref) == "x86_64"
        # Compose's per-service `platform:` on a native run: the same arm64 images, found, not rebuilt.
        mixed = dataclasses.replace(topology, services={
            **topology.services, "store": dataclasses.replace(topology.services["store"], platform=ARM64)})
        per_service = ImageBuilder(mixed, engine).ensure(["store"])
        assert per_service["service:store"].ref == arm["service:store"].ref and not per_service["service:store"].built
        assert per_service["base:os@linux/arm64"].ref == arm["base:os"].ref
        store_tags = server.tags(f"ci/{PROJECT}/store")
        assert {arm["service:store"].ref.split(":")[1], amd["service:store"].ref.split(":")[1]} <= store_tags

        # An arm64 laptop with an empty engine: each image comes from the cache, for its own architecture.
        remove_platform_images(engine, ARM64)
        again = ImageBuilder(topology, engine, platform=ARM64, cache=cache).ensure(["store"])
        assert again["service:store"].ref == arm["service:store"].ref and again["service:store"].pulled
        assert image_platform(engine, again["service:store"].ref) == (ARM64, ARM64)
        assert machine_in(engine, again["service:store"].ref) == "aarch64"
        native_again = ImageBuilder(topology, engine, cache=cache).ensure(["store"])
        assert native_again["service:store"].ref == amd["service:store"].ref
    finally:
        server.close()
        remove_platform_images(engine, ARM64)


def remove_platform_images(engine: Engine, platform: str) -> None:
    """Remove the test project's images for `platform` (children before parents)."""
    for _ in range(3):
        for image in engine.images({eng.PROJECT: PROJECT, eng.PLATFORM: platform}):
            for ref in image.get("RepoTags") or [image["Id"]]:
                try:
                    engine.remove_image(ref)
                except Exception:  # noqa: BLE001 - a parent still has a child: the next round
                    pass
