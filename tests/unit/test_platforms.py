"""Platforms: names, the platform in every content hash, a mismatch as a clear error, where mmdebstrap runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from envctl.images import bootstrap, platforms
from envctl.images.builder import ImageBuilder, image_targets
from envctl.topology import Bootstrap, load_topology

STACK = Path(__file__).parents[1] / "integration" / "stack" / "envctl.yaml"


@pytest.mark.parametrize("text, expected", [
    ("linux/amd64", "linux/amd64"), ("amd64", "linux/amd64"), ("x86_64", "linux/amd64"),
    ("linux/arm64/v8", "linux/arm64"), ("aarch64", "linux/arm64"), ("LINUX/ARM64", "linux/arm64"),
    ("linux/arm/v7", "linux/arm/v7"), ("armhf", "linux/arm/v7"),
])
def test_platform_names_are_normalized(text: str, expected: str) -> None:
    assert platforms.normalize(text) == expected


@pytest.mark.parametrize("text", ["windows/amd64", "linux/sparc", "mips", ""])
def test_an_unknown_platform_is_an_error_naming_where_it_came_from(text: str) -> None:
    with pytest.raises(platforms.UnknownPlatform) as caught:
        platforms.normalize(text, "--platform")
    assert caught.value.message.startswith("--platform:") and "linux/arm64" in (caught.value.fix or "")


def test_the_flag_wins_over_the_environment_which_wins_over_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(platforms.PLATFORM_ENV, raising=False)
    monkeypatch.delenv(platforms.COMPOSE_PLATFORM_ENV, raising=False)
    assert platforms.chosen(None, "linux/amd64") == "linux/amd64"
    monkeypatch.setenv(platforms.PLATFORM_ENV, "arm64")
    assert platforms.chosen(None, "linux/amd64") == "linux/arm64"
    assert platforms.chosen("amd64", "linux/arm64") == "linux/amd64"
    monkeypatch.delenv(platforms.PLATFORM_ENV)
    monkeypatch.setenv(platforms.COMPOSE_PLATFORM_ENV, "linux/arm64/v8")  # Compose's own variable
    assert platforms.chosen(None, "linux/amd64") == "linux/arm64"


def test_an_image_for_another_platform_is_a_clear_error_not_an_exec_format_error() -> None:
    platforms.check_image({"Os": "linux", "Architecture": "arm64"}, "linux/arm64", "base 'os'")
    with pytest.raises(platforms.PlatformMismatch) as caught:
        platforms.check_image({"Os": "linux", "Architecture": "amd64"}, "linux/arm64", "the base 'os''s image debian:12")
    assert "linux/amd64" in caught.value.message and "linux/arm64" in caught.value.message
    assert "--platform" in (caught.value.fix or "")


def test_an_arm_variant_is_part_of_the_image_platform() -> None:
    assert platforms.of_image({"Os": "linux", "Architecture": "arm", "Variant": "v7"}) == "linux/arm/v7"


def test_mmdebstrap_is_asked_for_the_target_architecture_in_debians_words() -> None:
    spec = Bootstrap(distro="debian", suite="bookworm", packages=("python3",), mirror="http://m/debian")
    assert bootstrap.mmdebstrap_arguments(spec, "linux/arm64", "/out.tar") == [
        "--variant=minbase", "--format=tar", "--architectures=arm64",
        *(f"--dpkgopt={option}" for option in bootstrap.DPKG_OPTIONS),
        *(f"--aptopt={option}" for option in bootstrap.APT_OPTIONS),
        "--include=python3", "bookworm", "/out.tar", "http://m/debian"]
    assert "--architectures=armhf" in bootstrap.mmdebstrap_arguments(spec, "linux/arm/v7", "/out.tar")
    assert "--dpkgopt=force-unsafe-io" in bootstrap.mmdebstrap_arguments(spec, "linux/amd64", "/out.tar")
    extract = Bootstrap(distro="debian", suite="bookworm", packages=("busybox-static",), variant="extract")
    assert not any(a.startswith(("--dpkgopt", "--aptopt")) for a in bootstrap.mmdebstrap_arguments(
        extract, "linux/amd64", "/out.tar")), "'extract' installs nothing: no dpkg or apt settings"


def test_without_mmdebstrap_on_path_the_bootstrap_runs_in_a_container(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert bootstrap.where_it_runs() == "container"
    tool = tmp_path / "mmdebstrap"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setattr(bootstrap.sys, "platform", "linux")
    assert bootstrap.where_it_runs() == "host"
    monkeypatch.setattr(bootstrap.sys, "platform", "darwin")  # a macOS Homebrew mmdebstrap could not chroot
    assert bootstrap.where_it_runs() == "container"


class VersionOnly:
    """An engine that only answers what it is (the hash needs nothing else)."""

    def __init__(self, arch: str) -> None:
        self.arch = arch

    def version(self) -> dict:
        return {"Os": "linux", "Arch": self.arch}


def test_the_platform_is_part_of_every_content_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(platforms.PLATFORM_ENV, raising=False)
    monkeypatch.delenv(platforms.COMPOSE_PLATFORM_ENV, raising=False)
    topology = load_topology(STACK, environ={})
    amd = ImageBuilder(topology, VersionOnly("amd64"))  # type: ignore[arg-type]
    arm = ImageBuilder(topology, VersionOnly("arm64"))  # type: ignore[arg-type]
    chosen_arm = ImageBuilder(topology, VersionOnly("amd64"), platform="linux/arm64")  # type: ignore[arg-type]
    target = image_targets(topology)["base:os"]
    base = topology.bases["os"]
    assert amd._bootstrap_ref(target, base) != arm._bootstrap_ref(target, base)
    assert arm._bootstrap_ref(target, base) == chosen_arm._bootstrap_ref(target, base)
    assert arm._labels(target, "base", "abc")["envctl.platform"] == "linux/arm64"


PER_SERVICE = """\
name: mixed
bases:
  os:
    bootstrap: {distro: debian, suite: bookworm, packages: [python3]}
  py:
    dockerfile: py.Dockerfile
    from: os
services:
  web: {build: web, base: py, platform: linux/arm64/v8}
  api: {build: api, base: py}
  cache: {image: 'redis:7', platform: amd64}
"""


def _per_service(tmp_path: Path):
    (tmp_path / "envctl.yaml").write_text(PER_SERVICE)
    (tmp_path / "py.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    for name in ("web", "api"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    return load_topology(tmp_path / "envctl.yaml", environ={})


def test_a_service_platform_gets_its_own_chain_of_bases(tmp_path: Path) -> None:
    from envctl.images.builder import service_image_key

    topology = _per_service(tmp_path)
    assert topology.services["web"].platform == "linux/arm64" and topology.services["api"].platform is None
    targets = image_targets(topology)
    assert targets["service:web"].parent == "base:py@linux/arm64" and targets["service:web"].platform == "linux/arm64"
    assert targets["base:py@linux/arm64"].parent == "base:os@linux/arm64"
    assert targets["service:api"].parent == "base:py" and targets["base:py"].platform is None
    assert targets["image:cache"].platform == "linux/amd64"
    assert set(image_targets(topology, ["api"])) == {"service:api", "base:py", "base:os"}  # no arm64 work for api
    assert targets["base:os@linux/arm64"].subject == "base:os@linux/arm64"
    assert service_image_key(topology, "web") == "service:web"


def test_a_service_platform_hashes_as_a_run_for_that_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(platforms.PLATFORM_ENV, raising=False)
    monkeypatch.delenv(platforms.COMPOSE_PLATFORM_ENV, raising=False)
    topology = _per_service(tmp_path)
    targets = image_targets(topology)
    amd_run = ImageBuilder(topology, VersionOnly("amd64"))  # type: ignore[arg-type]
    arm_run = ImageBuilder(topology, VersionOnly("amd64"), platform="linux/arm64")  # type: ignore[arg-type]
    base = topology.bases["os"]
    per_service = amd_run._bootstrap_ref(targets["base:os@linux/arm64"], base)
    assert per_service != amd_run._bootstrap_ref(targets["base:os"], base)
    assert per_service == arm_run._bootstrap_ref(targets["base:os"], base)  # one image cache serves both
    assert amd_run._labels(targets["service:web"], "service", "abc")["envctl.platform"] == "linux/arm64"
    assert amd_run._labels(targets["service:api"], "service", "abc")["envctl.platform"] == "linux/amd64"


def test_an_unknown_service_platform_names_its_line(tmp_path: Path) -> None:
    from envctl.errors import EnvctlError

    (tmp_path / "envctl.yaml").write_text("name: p\nservices:\n  web:\n    image: busybox\n    platform: windows/amd64\n")
    with pytest.raises(EnvctlError) as caught:
        load_topology(tmp_path / "envctl.yaml", environ={})
    assert "envctl.yaml:5" in str(caught.value) and "services.web.platform" in str(caught.value)


def docker_desktop_context(config: Path) -> None:
    """A DOCKER_CONFIG as Docker Desktop leaves it: the 'desktop-linux' context in use."""
    import hashlib
    import json

    meta = config / "contexts" / "meta" / hashlib.sha256(b"desktop-linux").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "desktop-linux", "Metadata": {},
                                                "Endpoints": {"docker": {"Host": f"unix://{config}/run/docker.sock",
                                                                         "SkipTLSVerify": False}}}))
    (config / "config.json").write_text(json.dumps({"currentContext": "desktop-linux"}))


def test_the_engine_is_where_docker_host_then_the_docker_context_says(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from envctl.backend.engine import engine_location

    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    docker_desktop_context(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    assert engine_location() == ("tcp://10.0.0.5:2375", "$DOCKER_HOST")
    monkeypatch.delenv("DOCKER_HOST")
    assert engine_location() == (f"unix://{tmp_path}/run/docker.sock", "docker context 'desktop-linux'")


def test_on_windows_the_engine_is_the_named_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envctl.backend import engine

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no context chosen
    monkeypatch.setattr(engine.sys, "platform", "win32")
    assert engine.engine_location()[0] == "npipe:////./pipe/docker_engine"


def test_a_foreign_build_the_engine_cannot_run_says_to_install_emulation(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from envctl.errors import BuildFailed

    monkeypatch.delenv(platforms.PLATFORM_ENV, raising=False)
    topology = load_topology(STACK, environ={})
    builder = ImageBuilder(topology, VersionOnly("amd64"), platform="linux/arm64")  # type: ignore[arg-type]
    log = tmp_path / "base-os.log"
    log.write_text("chroot: failed to run command '/bin/true': Exec format error\n")
    with pytest.raises(BuildFailed) as caught, builder._explained("base 'os'", builder.platform, log, "check the mirror"):
        raise BuildFailed("bootstrapping base 'os' failed")
    assert "qemu-user-static" in (caught.value.fix or "") and str(log) in (caught.value.fix or "")
    log.write_text("E: Unable to locate package pyhton3\n")  # an ordinary mistake keeps its own fix
    with pytest.raises(BuildFailed) as caught, builder._explained("base 'os'", builder.platform, log, "check the mirror"):
        raise BuildFailed("bootstrapping base 'os' failed")
    assert (caught.value.fix or "").startswith("check the mirror")


class NoDebianEngine(VersionOnly):
    """An engine with no Debian image on it and no registry to pull one from."""

    def __init__(self) -> None:
        super().__init__("arm64")
        self.pulled: list[str] = []

    def images(self, labels: dict) -> list:
        return []

    def images_named(self, name: str) -> list:
        return []

    def image_id(self, ref: str) -> None:
        return None

    def pull(self, repository: str, pin: str, on_layer=None, platform=None) -> str:
        from envctl.errors import RegistryError

        self.pulled.append(f"{repository}:{pin}")
        raise RegistryError("cannot pull: registry unreachable (dial tcp: lookup registry.example.com)",
                            reason=RegistryError.NOT_FOUND)


def test_no_debian_image_and_no_registry_is_one_error_with_the_fix(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import threading

    from envctl.errors import BootstrapToolMissing

    monkeypatch.delenv(bootstrap.TOOL_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = NoDebianEngine()
    spec = Bootstrap(distro="debian", suite="bookworm")
    with pytest.raises(BootstrapToolMissing) as caught:
        bootstrap.bootstrap(engine, spec, "linux/arm64", tmp_path / "rootfs.tar", io.StringIO(), "base 'os'",  # type: ignore[arg-type]
                            threading.Event())
    assert engine.pulled == [bootstrap.PULLED_DEBIAN]
    assert "no Debian image on the Docker engine" in caught.value.message
    assert f"docker pull {bootstrap.PULLED_DEBIAN}" in (caught.value.fix or "") and bootstrap.TOOL_ENV in (caught.value.fix or "")


class CandidatesEngine(VersionOnly):
    """Two envctl root filesystems of Debian on the engine; only the second has a shell and apt."""

    PATHS = {"tiny-rootfs:1": set(), "os-rootfs:1": {"/bin/sh", "/usr/bin/apt-get"}}

    def __init__(self) -> None:
        super().__init__("amd64")

    def images(self, labels: dict) -> list:
        return [{"RepoTags": [ref]} for ref in self.PATHS]

    def images_named(self, name: str) -> list:
        return []

    def inspect_image(self, ref: str) -> dict:
        return {"Os": "linux", "Architecture": "amd64"}

    def path_kinds(self, ref: str):
        import contextlib

        return contextlib.nullcontext(lambda path: "file" if path in self.PATHS[ref] else None)


def test_the_bootstrap_tool_is_made_from_a_debian_image_with_a_shell_and_apt() -> None:
    # An 'extract' bootstrap of busybox-static is Debian's, but the tool's apt-get cannot run in it.
    assert bootstrap.debian_on_engine(CandidatesEngine()) == "os-rootfs:1"  # type: ignore[arg-type]
