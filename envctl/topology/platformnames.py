"""Platform names (`linux/amd64`, `linux/arm64`) as engines, uname and Compose files write them.

Pure names only, so the topology can check a service's `platform:` where it is written;
what envctl does with a platform (hashes, checks, emulation) is `envctl.images.platforms`'.
"""
from __future__ import annotations

# What engines, uname and Compose files call an architecture -> Docker's (OCI's) name.
ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64",
    "aarch64": "arm64", "arm64": "arm64", "arm64/v8": "arm64", "aarch64/v8": "arm64",
    "armhf": "arm/v7", "armv7l": "arm/v7", "arm": "arm/v7", "arm/v7": "arm/v7",
    "i386": "386", "i686": "386", "386": "386",
    "ppc64le": "ppc64le", "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}
KNOWN = ("write linux/amd64 or linux/arm64 (also linux/arm/v7, linux/386, linux/ppc64le, linux/s390x, "
         "linux/riscv64)")


def canonical(text: str) -> str | None:
    """'linux/arm64/v8', 'arm64' or 'aarch64' -> 'linux/arm64'; None for what envctl cannot build for."""
    parts = text.strip().lower().split("/")
    os_name = parts[0] if len(parts) > 1 else "linux"
    arch = "/".join(parts[1:]) if len(parts) > 1 else parts[0]
    if os_name != "linux" or arch not in ARCH_ALIASES:
        return None
    return f"linux/{ARCH_ALIASES[arch]}"
