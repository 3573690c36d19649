"""Target platforms (`linux/amd64`, `linux/arm64`): their names, the engine's own, and checks.

An image is made for one platform, and the platform is part of its content hash and its
labels, so a cache shared by amd64 agents and arm64 laptops keeps the two apart.
"""
from __future__ import annotations

import os

from envctl.errors import EnvctlError
from envctl.topology import platformnames

PLATFORM_ENV = "ENVCTL_PLATFORM"
COMPOSE_PLATFORM_ENV = "DOCKER_DEFAULT_PLATFORM"  # what Compose and the docker CLI read

# Docker's architecture -> Debian's, for mmdebstrap's --architectures.
DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm/v7": "armhf", "386": "i386",
               "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}


class UnknownPlatform(EnvctlError):
    pass


class PlatformMismatch(EnvctlError):
    pass


def normalize(text: str, where: str = "platform") -> str:
    """'linux/arm64/v8', 'arm64' or 'aarch64' -> 'linux/arm64'; an unknown name is an error naming `where`."""
    found = platformnames.canonical(text)
    if found is None:
        raise UnknownPlatform(f"{where}: {text!r} is not a platform envctl can build for", fix=platformnames.KNOWN)
    return found


def architecture(platform: str) -> str:
    """'linux/arm/v7' -> 'arm' (what an image's metadata calls it), 'linux/arm64' -> 'arm64'."""
    return platform.split("/")[1]


def debian_architecture(platform: str) -> str:
    return DEBIAN_ARCH[platform.split("/", 1)[1]]


def of_engine(version: dict) -> str:
    """The engine's own platform from its version answer (Os, Arch)."""
    return normalize(f"{version.get('Os', 'linux')}/{version.get('Arch', 'amd64')}", "the engine's platform")


def of_image(info: dict) -> str:
    """An image's platform from its inspect answer (Os, Architecture, Variant)."""
    arch = info.get("Architecture") or "amd64"
    if info.get("Variant") and arch == "arm":
        arch = f"arm/{info['Variant']}"
    return normalize(f"{info.get('Os') or 'linux'}/{arch}", "an image's platform")


def chosen(flag: str | None, engine_platform: str) -> str:
    """The platform to build and run for: --platform, $ENVCTL_PLATFORM, $DOCKER_DEFAULT_PLATFORM, or the engine's."""
    for text, where in ((flag, "--platform"), (os.environ.get(PLATFORM_ENV), f"${PLATFORM_ENV}"),
                        (os.environ.get(COMPOSE_PLATFORM_ENV), f"${COMPOSE_PLATFORM_ENV}")):
        if text:
            return normalize(text, where)
    return engine_platform


def check_image(info: dict, platform: str, what: str) -> None:
    """An image for another platform is a clear error here, not an 'exec format error' at start-up."""
    found = of_image(info)
    if found != platform:
        raise PlatformMismatch(
            f"{what} is an image for {found}, and this run is for {platform}",
            fix=f"use an image built for {platform} (for a multi-platform image, pull it with "
            f"'docker pull --platform {platform} NAME'), or choose the platform with --platform {found}")


def emulation_hint(platform: str, engine_platform: str) -> str:
    """What to do when the engine cannot run `platform`'s programs."""
    if platform == engine_platform:
        return ""
    return (f"the engine runs {engine_platform} natively; to run {platform} programs it needs emulation: "
            "Docker Desktop has it built in, on Linux install qemu-user-static (with binfmt_misc, "
            "e.g. 'sudo apt-get install qemu-user-static')")
