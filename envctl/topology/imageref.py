"""Image references (`[HOST[:PORT]/]NAME[:TAG][@DIGEST]`) and registry locations (`HOST[:PORT]/PREFIX`).

Parsed as Docker's distribution library does (docker-image-py ports its grammar), so a name
envctl accepts is one the engine accepts, registry ports and digests included.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType


DEFAULT_TAG = "latest"


def _distribution() -> ModuleType:
    """docker-image-py's grammar, imported on first use: compiling its expressions costs every
    command ~15 ms of start-up, and most runs (services built from a Dockerfile) never parse a name."""
    from docker_image import reference

    return reference


@dataclass(frozen=True)
class ImageReference:
    name: str  # the repository, with its registry host when one is given
    tag: str | None = None
    digest: str | None = None  # "sha256:..."

    @property
    def registry(self) -> str | None:
        """The registry host (and port) the name starts with; None for Docker Hub."""
        domain = _distribution().Reference.split_docker_domain(self.name)[0]
        return None if domain == "docker.io" else domain

    @property
    def pin(self) -> str:
        """What to pull besides the name: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


class InvalidReference(ValueError):
    pass


def parse_image_reference(text: str) -> ImageReference:
    distribution = _distribution()
    try:
        parsed = distribution.Reference.parse(text)
    except distribution.InvalidReference as exc:
        raise InvalidReference(f"{text!r} is not a valid image name ({exc})") from None
    return ImageReference(parsed["name"], parsed["tag"], parsed["digest"])


@dataclass(frozen=True)
class RegistryLocation:
    """Where images go in a registry: a host (with port) and a repository prefix (maybe empty)."""

    host: str
    prefix: str = ""

    def repository(self, local_repository: str) -> str:
        """The registry's name for one of the project's repositories (`shop/orders`)."""
        return "/".join(part for part in (self.host, self.prefix, local_repository) if part)

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host


def registry_location_problem(text: str) -> str | None:
    """Why `text` is not HOST[:PORT][/PREFIX], or None if it is."""
    try:
        parse_registry_location(text)
    except InvalidReference as exc:
        return str(exc)
    return None


def parse_registry_location(text: str) -> RegistryLocation:
    host, _, prefix = text.strip().strip("/").partition("/")
    # A registry host has a dot or a port, or is localhost, as Docker decides where a name points.
    looks_like_host = "." in host or ":" in host or host == "localhost"
    probe = f"{host}/{prefix}/x" if prefix else f"{host}/x"
    distribution = _distribution()
    try:
        valid = looks_like_host and distribution.Reference.parse(probe)["name"] == probe
    except distribution.InvalidReference:
        valid = False
    if not valid:
        raise InvalidReference(f"{text!r} is not a registry location: it needs a host with a dot or a port "
                               "(or localhost), then an optional lower-case path prefix")
    return RegistryLocation(host, prefix)
