"""Registries: pulls (with retries and pull policies), pushes tagged by commit, the shared image cache.

The cache is keyed by the content hash envctl already tags its images with: an image is
taken from the cache only if its `envctl.input-hash` label equals the hash its tag names,
and the cache never fails a run: unreachable or refusing, it warns once and envctl builds.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from envctl.backend import engine as labels
from envctl.backend.engine import Engine
from envctl.errors import EnvctlError, RegistryError
from envctl.progress import Event, Progress
from envctl.topology.imageref import (
    ImageReference,
    InvalidReference,
    RegistryLocation,
    parse_image_reference,
    parse_registry_location,
)
from envctl.topology import Topology

REGISTRY_ENV = "ENVCTL_REGISTRY"
CACHE_ENV = "ENVCTL_CACHE"
CACHE_RECORD = "from-cache.json"  # in .envctl/: which local images came from the cache
LAYER_DONE = {"Pull complete", "Already exists", "Pushed", "Layer already exists", "Mounted from"}

Report = Callable[[str], None]  # one line of progress: "3 layers done"


# -- where: flags, environment, topology --------------------------------------------------

def location_setting(flag: str | None, variable: str, configured: str | None, what: str) -> RegistryLocation | None:
    """The registry location from the flag, else $variable, else the topology; None if none is set."""
    for text, source in ((flag, f"--{what}"), (os.environ.get(variable), f"${variable}"), (configured, f"'{what}:'")):
        if text:
            try:
                return parse_registry_location(text)
            except InvalidReference as exc:
                raise EnvctlError(f"{source}: {exc}", fix="write HOST[:PORT]/PREFIX, e.g. 127.0.0.1:5000/ci") from None
    return None


def push_location(topology: Topology, flag: str | None) -> RegistryLocation:
    location = location_setting(flag, REGISTRY_ENV, topology.registry, "registry")
    if location is None:
        raise EnvctlError("no registry to push to",
                          fix=f"name one: 'registry: HOST[:PORT]/PREFIX' in {topology.file.name}, "
                          f"--registry, or ${REGISTRY_ENV}")
    return location


# -- pulling --------------------------------------------------------------------------------

def image_reference(ref: str, what: str = "") -> ImageReference:
    """`ref` parsed; a name Docker would refuse is an error naming `what` ("service 'db'") and the fix."""
    try:
        return parse_image_reference(ref)
    except InvalidReference as exc:
        raise EnvctlError(f"{what}: {exc}" if what else str(exc),
                          fix="write NAME[:TAG] or NAME@sha256:DIGEST, e.g. 'postgres:16' or "
                          "'registry.example.com:5000/team/app:1.2'") from None


def pull(engine: Engine, ref: str, report: Report, attempts: int = 4, what: str = "",
         platform: str | None = None) -> str:
    """Pull `ref` (for `platform`, else the engine's), retrying transient failures (unreachable, 5xx); its id.

    `what` names where the name comes from ("service 'db'"), for the error a bad name gets.
    """
    reference = image_reference(ref, what)
    return _retrying(attempts)(engine.pull, reference.name, reference.pin, _layer_counter(report), platform)


def _retrying(attempts: int) -> Retrying:
    """Retry what a registry may do better on the next try (unreachable, 5xx), never a refusal."""
    return Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=0.5, max=4),
                    retry=retry_if_exception(lambda e: isinstance(e, RegistryError) and e.transient), reraise=True)


def ensure_pulled(engine: Engine, ref: str, policy: str, report: Report, what: str = "",
                  platform: str | None = None) -> str:
    """The image `ref` on the engine as `policy` (Compose's pull_policy) wants it; returns its id."""
    image_reference(ref, what)  # before asking the engine, which would word it worse
    if policy != "always":
        image_id = engine.image_id(ref)
        if image_id is not None:
            return image_id
        if policy == "never":
            raise EnvctlError(f"image {ref} is not on the engine, and its pull_policy is 'never'",
                              fix=f"pull it first ('envctl pull' or 'docker pull {ref}'), or set 'pull_policy: missing'")
    return pull(engine, ref, report, what=what, platform=platform)


def from_images(dockerfile: Path, buildargs: dict[str, str]) -> list[str]:
    """The images a Dockerfile's FROM lines name (build args filled in), minus stages and scratch."""
    parser = DockerfileParser(str(dockerfile), build_args=buildargs, env_replace=True)
    stages = set()
    for instruction in parser.structure:
        words = instruction["value"].split()
        if instruction["instruction"] == "FROM" and len(words) >= 3 and words[-2].lower() == "as":
            stages.add(words[-1].lower())
    return [image for image in dict.fromkeys(parser.parent_images)
            if image and image.lower() not in stages and image != "scratch" and "$" not in image]


def _layer_counter(report: Report) -> Callable[[str, str], None]:
    """Turn per-layer statuses into a line each time a layer finishes (not one per chunk of bytes)."""
    seen: set[str] = set()
    done: set[str] = set()
    lock = threading.Lock()

    def on_layer(layer: str, status: str) -> None:
        with lock:
            seen.add(layer)
            if any(status.startswith(word) for word in LAYER_DONE) and layer not in done:
                done.add(layer)
                report(f"{len(done)} of {len(seen)} layers done")

    return on_layer


# -- pushing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pushed:
    local: str  # the project's ref, repository:content-hash
    remote: str  # the registry's repository
    tags: tuple[str, ...]
    digest: str


def release_tags(root: Path, branch: bool = False) -> list[str]:
    """`git-SHA` (12 hex digits) in a git checkout, and the branch's name if asked (made tag-safe)."""
    commit = git_output(root, "rev-parse", "HEAD")
    if not commit:
        return []
    tags = [f"git-{commit[:12]}"]
    if branch:
        # Jenkins checks out a detached HEAD and names the branch in the environment.
        name = os.environ.get("BRANCH_NAME") or os.environ.get("GIT_BRANCH") or git_output(root, "rev-parse", "--abbrev-ref", "HEAD")
        if name and name != "HEAD":
            tags.append(re.sub(r"[^A-Za-z0-9_.-]", "-", name.removeprefix("origin/"))[:128].lstrip(".-") or "branch")
    return tags


def push(engine: Engine, local: str, location: RegistryLocation, extra_tags: Iterable[str], report: Report,
         attempts: int = 4) -> Pushed:
    """Push one of the project's images under its content hash and `extra_tags`; local tags are tidied up after."""
    repository, hash_tag = local.rsplit(":", 1)
    remote = location.repository(repository)
    tags = (hash_tag, *extra_tags)
    digest = ""
    for tag in tags:
        engine.tag(local, remote, tag)
        try:
            digest = _retrying(attempts)(engine.push, remote, tag, _layer_counter(report)) or digest
        finally:
            engine.remove_image(f"{remote}:{tag}")  # only a tag: the image stays under `local`
    return Pushed(local, remote, tags, digest)


def push_project_images(topology: Topology, engine: Engine, resolved: Iterable, location: RegistryLocation,
                        branch: bool, progress: Progress) -> list[Pushed]:
    """Push the project's own images among `resolved` (not the registry images it merely runs)."""
    tags = release_tags(topology.root, branch)
    pushed = []
    for image in resolved:
        if not image.ref.startswith(f"{topology.name}/"):
            continue
        subject = image.key.split(":", 1)[1] if image.key.startswith("service:") else image.key
        progress(Event(subject, "push", f"{image.ref} to {location}"))
        pushed.append(push(engine, image.ref, location, tags, lambda line: progress(Event(subject, "push", line))))
        progress(Event(subject, "pushed", f"{pushed[-1].remote}: {', '.join(pushed[-1].tags)}"))
    return pushed


def pull_topology_images(topology: Topology, engine: Engine, services: Iterable[str], progress: Progress) -> dict[str, str]:
    """`envctl pull`: every registry image the topology (or `services`) runs, pulled now; {ref: id}."""
    wanted = list(services) or list(topology.services)
    refs = {topology.services[n].image: n for n in wanted if topology.services[n].image}
    bases = {topology.services[n].base for n in wanted if topology.services[n].base}
    refs.update({topology.bases[b].image: f"base:{b}" for b in sorted(bases)
                 if b in topology.bases and topology.bases[b].image})
    pulled = {}
    for ref, subject in refs.items():
        if subject in topology.services and topology.services[subject].pull_policy == "never":
            continue
        progress(Event(subject, "pull", ref))
        pulled[ref] = pull(engine, ref, lambda line: progress(Event(subject, "pull", f"{ref}: {line}")))
        progress(Event(subject, "pulled", ref))
    return pulled


def git_output(root: Path, *args: str) -> str | None:
    """What `git ARGS` prints in `root`; None outside a checkout (or without git)."""
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


# -- the shared cache -----------------------------------------------------------------------

@dataclass
class ImageCache:
    """A registry of content-hash-tagged images shared by CI agents; best effort, never in the way."""

    engine: Engine
    location: RegistryLocation
    record: Path  # .envctl/from-cache.json
    warnings: list[str] = field(default_factory=list)
    on_warning: Callable[[str], None] | None = None  # hears each warning as it happens
    _broken: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, local: str, report: Report) -> str | None:
        """Pull `local` (repository:hash) from the cache and tag it; its id, or None on a miss."""
        if self._broken:
            return None
        repository, expected = local.rsplit(":", 1)
        remote = self.location.repository(repository)
        try:
            pull(self.engine, f"{remote}:{expected}", report, attempts=1)
        except RegistryError as exc:
            if exc.reason != RegistryError.NOT_FOUND:
                self._give_up(f"cannot pull from the image cache {self.location} ({exc.message}); building instead")
            return None
        try:
            found = (self.engine.inspect_image(f"{remote}:{expected}").get("Config") or {}).get("Labels") or {}
            if found.get(labels.INPUT_HASH) != expected:
                self._warn(f"the image cache's {remote}:{expected} has content hash "
                           f"{found.get(labels.INPUT_HASH) or 'none'}, not {expected}; ignored it and built instead")
                return None
            self.engine.tag(f"{remote}:{expected}", repository, expected)
        finally:
            self.engine.remove_image(f"{remote}:{expected}")  # the tag (and the image, if it was ignored)
        image_id = self.engine.image_id(local)
        self._remember(image_id, f"{remote}:{expected}")
        return image_id

    def store(self, local: str, report: Report) -> None:
        """Push a freshly built image to the cache; a failure warns once and stops further pushes."""
        if self._broken or not self._hash_label_matches(local):
            return
        try:
            push(self.engine, local, self.location, (), report, attempts=1)
        except RegistryError as exc:
            self._give_up(f"cannot push to the image cache {self.location} ({exc.message}); "
                          "the run goes on without it")

    def _hash_label_matches(self, local: str) -> bool:
        # Images made before their kind carried the label (older root filesystems) would only
        # be refused by every agent that fetched them: not worth pushing.
        found = (self.engine.inspect_image(local).get("Config") or {}).get("Labels") or {}
        return found.get(labels.INPUT_HASH) == local.rsplit(":", 1)[1]

    def has(self, local: str) -> bool:
        """Whether the cache holds `local` already (asked only when filling the cache from local images)."""
        repository, tag = local.rsplit(":", 1)
        return self.engine.registry_has(f"{self.location.repository(repository)}:{tag}")

    def _give_up(self, message: str) -> None:
        with self._lock:
            if self._broken:
                return
            self._broken = True
        self._warn(message)

    def _warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    def _remember(self, image_id: str | None, remote: str) -> None:
        if image_id is None:
            return
        with self._lock:
            known = from_cache(self.record)
            known[image_id] = remote
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self.record.write_text(json.dumps(known, indent=1, sort_keys=True))


def from_cache(record: Path) -> dict[str, str]:
    """{image id: the cache ref it was pulled from} for the project's images that came from the cache."""
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return {}


def cache_for(topology: Topology, engine: Engine, flag: str | None = None) -> ImageCache | None:
    location = location_setting(flag, CACHE_ENV, topology.cache, "cache")
    if location is None:
        return None
    return ImageCache(engine, location, topology.root / ".envctl" / CACHE_RECORD)
