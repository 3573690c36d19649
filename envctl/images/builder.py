"""Images: bases (bootstrapped, pulled or built), service images on them, content-hash tags.

A tag is the hash of an image's build inputs (context files after `.dockerignore`, the
Dockerfile, build args and the parent image's id), so an unchanged image is found by
name and never rebuilt, and a touched file (mtime only) changes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from envctl.backend import engine as labels
from envctl.images import assemble, bootstrap, codeonly, platforms, registry, secretbuild, secretsteps
from envctl.topology import secrets
from envctl.images.buildcontext import BuildContext
from envctl.backend.engine import Engine
from envctl.errors import BuildFailed, Cancelled, EngineUnavailable, EnvctlError
from envctl.graph import DependencyFailed, closure, run_dag, topological_order
from envctl.mockserver import IMAGE_CONTEXT
from envctl.mocks.runtime import mock_base
from envctl.progress import Event, Progress, silent
from envctl.topology.secrets import MaskingWriter
from envctl.topology import Base, Topology

# Bump when the meaning of a hash changes, to rebuild everything once. 2: the target platform is part of
# every hash. 3: the assembler's output changed (the base's parent directories keep their mode, owner and
# mtime; a Dockerfile's code-only tail is written on the builder's image of its prefix). 4: assembled
# images reset the base's ArgsEscaped and stdin settings and take the author as the builder does.
HASH_VERSION = "4"
CA_TARGET = "/etc/ssl/certs/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageTarget:
    """One image the topology produces: a base or a service's own build."""

    key: str  # "base:NAME", "service:NAME", "mock:BASE" or "image:NAME"
    name: str
    kind: str  # "base", "service", "mock", or "image" (a service's `image:`, pulled)
    repository: str
    parent: str | None  # key of the base it builds on
    platform: str | None = None  # a service's `platform:` (and its bases'); None: the run's

    @property
    def subject(self) -> str:
        """How progress and the timeline name it: 'web', 'base:python', 'base:python@linux/arm64'."""
        if self.kind != "base":
            return self.name
        return f"base:{self.name}" + (f"@{self.platform}" if self.platform else "")


@dataclass(frozen=True)
class ResolvedImage:
    key: str
    ref: str  # repository:tag, or a pulled image's name
    id: str
    built: bool  # False when an existing image was reused
    pulled: bool = False  # from a registry (or the image cache) during this resolution


def state_dir(topology: Topology) -> Path:
    return topology.root / ".envctl"


def machine_cores() -> int:
    """The cores this process may run on (a CPU-limited container has fewer)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 2)


def machine_parallelism() -> int:
    """Builds at once by default: twice the cores. A base or package build waits on the package
    mirror, PyPI and the engine's disk for much of its time: on 2 cores, the reference stack's four
    package builds at once took its cold `up` from the OS base to all-ready in 0.86x the time of two."""
    return 2 * machine_cores()


BUILD_PARALLELISM = machine_parallelism()


def host_ca_bundle() -> Path | None:
    """The CA bundle this host trusts (where a TLS-intercepting proxy's CA would be)."""
    for candidate in (os.environ.get("ENVCTL_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"), CA_TARGET):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def base_key(name: str, platform: str | None = None) -> str:
    """The target of base `name` made for `platform` (None: the run's platform)."""
    return f"base:{name}" + (f"@{platform}" if platform else "")


def image_targets(topology: Topology, names: Iterable[str] | None = None) -> dict[str, ImageTarget]:
    """The images needed by the services and mocks `names` (all by default), bases included."""
    wanted: set[str] = set()
    names = [*topology.services, *topology.mocks] if names is None else list(names)
    for name in names:
        if name in topology.mocks:
            wanted.add(mock_image_key(topology, name))
            continue
        service = topology.services[name]
        if service.image is not None and service.build is None:  # with `build`, `image` is the built one's tag
            wanted.add(f"image:{name}")
        if service.build is not None:
            wanted.add(f"service:{name}")
        if service.base is not None:
            wanted.add(base_key(service.base, service.platform))
    everything = {**_all_targets(topology), **_pulled_targets(topology)}
    edges = {key: [t.parent] if t.parent else [] for key, t in everything.items()}
    return {k: t for k, t in everything.items() if k in closure(wanted, edges)}


def _pulled_targets(topology: Topology) -> dict[str, ImageTarget]:
    """Services that run a registry's image: pulled as their pull_policy says, never built or pruned."""
    return {f"image:{name}": ImageTarget(f"image:{name}", name, "image", service.image, None, service.platform)
            for name, service in topology.services.items() if service.image is not None and service.build is None}


def _all_targets(topology: Topology) -> dict[str, ImageTarget]:
    targets = {}
    for platform in {None, *(s.platform for s in topology.services.values())}:
        for name, base in topology.bases.items():
            parent = base_key(base.parent, platform) if base.parent else None
            key = base_key(name, platform)
            targets[key] = ImageTarget(key, name, "base", f"{topology.name}/base-{name}", parent, platform)
    for name, service in topology.services.items():
        if service.build is not None:
            parent = base_key(service.base, service.platform) if service.base else None
            targets[f"service:{name}"] = ImageTarget(f"service:{name}", name, "service", f"{topology.name}/{name}",
                                                     parent, service.platform)
    for name in topology.mocks:
        key = mock_image_key(topology, name)
        base = key.split(":", 1)[1]
        targets[key] = ImageTarget(key, f"mock-{base}", "mock", f"{topology.name}/mock-{base}", base_key(base))
    return targets


def service_image_key(topology: Topology, name: str) -> str:
    """The image target a service (or mock) runs on: its own build, its base, a mock image or a pulled one."""
    if name in topology.mocks:
        return mock_image_key(topology, name)
    service = topology.services[name]
    if service.build is not None:
        return f"service:{name}"
    if service.base is not None:
        return base_key(service.base, service.platform)
    return f"image:{name}"


def mock_image_key(topology: Topology, mock: str) -> str:
    """Every mock on the same base shares one image: the base plus vcrpy and the server."""
    return f"mock:{mock_base(topology, topology.mocks[mock])}"


def _hash(payload: dict) -> str:
    payload = {"envctl-hash": HASH_VERSION, **payload}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_commit(root: Path) -> str | None:
    return registry.git_output(root, "rev-parse", "HEAD")


class ImageBuilder:
    """Makes sure the images a topology needs exist, building only what is missing."""

    def __init__(self, topology: Topology, engine: Engine, progress: Progress = silent,
                 max_parallel: int = BUILD_PARALLELISM, tag_commit: bool = False, cache: registry.ImageCache | None = None,
                 fill_cache: bool = False, platform: str | None = None) -> None:
        self.topology = topology
        self.engine = engine
        self._platform_flag = platform
        self.progress = progress
        self.max_parallel = max_parallel
        self.tag_commit = tag_commit
        self.commit = git_commit(topology.root)
        self.logs = state_dir(topology) / "builds"
        self.resolved: dict[str, ResolvedImage] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.masker = secrets.for_topology(topology)
        self.cache = cache
        if cache is not None:
            cache.on_warning = lambda message: self.progress(Event("", "warning", message))
        self.fill_cache = fill_cache  # also push images found locally that the cache lacks
        self._dockerfiles: dict[Path, tuple[str, codeonly.Parsed | codeonly.NotCodeOnly]] = {}

    @cached_property
    def engine_platform(self) -> str:
        return platforms.of_engine(self.engine.version())

    @cached_property
    def platform(self) -> str:
        """What every image is made for (--platform, $ENVCTL_PLATFORM, or the engine's): part of every hash."""
        return platforms.chosen(self._platform_flag, self.engine_platform)

    def _platform_of(self, target: ImageTarget) -> str:
        """What `target` is made for: its service's `platform:`, else the run's."""
        return target.platform or self.platform

    def _hash(self, target: ImageTarget, payload: dict) -> str:
        return _hash({"platform": self._platform_of(target), **payload})

    # -- the public part -----------------------------------------------------------------

    def ensure(self, names: Iterable[str] | None = None, cancel: threading.Event | None = None,
               on_resolved: Callable[[str], None] | None = None) -> dict[str, ResolvedImage]:
        """Resolve (and build where needed) every image the services and mocks `names` need.

        `on_resolved(key)` is called as each image is there (in `resolved`), while others still build."""
        targets = image_targets(self.topology, names)
        self._cancel = cancel = cancel or threading.Event()
        requires = {k: [(t.parent, "done")] if t.parent else [] for k, t in targets.items()}

        def resolve(key: str, reach) -> None:
            self._resolve(targets[key])
            if on_resolved is not None:
                on_resolved(key)
        light = [k for k, t in targets.items() if self._code_only(t)]
        outcome = run_dag(requires, resolve, max_parallel=self.max_parallel, cancel=cancel, light=light)
        failures = {k: e for k, e in outcome.errors.items() if not isinstance(e, DependencyFailed)}
        if failures:
            raise failures[sorted(failures)[0]]  # a bug stays itself, traceback and all
        if outcome.errors:  # only dependency failures: the run was cancelled
            raise next(iter(outcome.errors.values()))
        return dict(self.resolved)

    def _code_only(self, target: ImageTarget) -> bool:
        """Whether `target` is a service image to be assembled without the builder (a second's work,
        which need not wait for a build's place). The guess stops at the Dockerfile's instructions: one
        the assembler then leaves to the builder (a symbolic link in a COPY) has no RUN, so it is quick too."""
        service = self.topology.services.get(target.name) if target.kind == "service" else None
        if service is None or service.build is None or not assemble.enabled():
            return False
        if set(self._build_options(target)) - {"labels", "cachefrom"}:
            return False
        try:
            _, parsed = self._dockerfile(BuildContext(service.build.context, service.build.dockerfile).dockerfile_path)
        except OSError:
            return False
        return isinstance(parsed, codeonly.Parsed)

    def _dockerfile(self, path: Path) -> tuple[str, codeonly.Parsed | codeonly.NotCodeOnly]:
        """A Dockerfile's text and instructions, read and parsed once for all who ask: the scheduler's
        guess (light or not), the secret steps' check and the assembler."""
        if path not in self._dockerfiles:  # two threads may both read it: the same answer
            # Not read_text: it makes a lone "\r" a line end, where the builder sees none. Bytes that are not
            # UTF-8 stay themselves (surrogateescape), so that a part written back is the bytes the builder reads.
            text = path.read_bytes().decode(errors="surrogateescape")
            parsed = codeonly.parse(text) if _utf8(text) else codeonly.NotCodeOnly(NOT_UTF8)
            self._dockerfiles[path] = (text, parsed)
        return self._dockerfiles[path]

    def expected_refs(self) -> set[str]:
        """The image refs the topology produces now, without building anything."""
        refs: set[str] = set()
        targets = _all_targets(self.topology)
        ids: dict[str, str | None] = {}
        for key in topological_order({k: [t.parent] if t.parent else [] for k, t in targets.items()}):
            target = targets[key]
            parent_id = ids.get(target.parent) if target.parent else None
            if target.parent and parent_id is None:
                ids[key] = None
                continue
            final = self._final_ref(target, parent_id)
            refs.update(self._candidate_refs(target, final))
            ids[key] = self.engine.image_id(final) if final else None
        return refs

    def planned(self, names: Iterable[str] | None = None) -> dict[str, tuple[str | None, bool]]:
        """Each image `names` need: its ref as it would be made now, and whether the engine has it.

        Nothing is built or pulled. A ref is None while the base it builds on is missing (its
        hash covers the base's id, known once the base exists)."""
        targets = image_targets(self.topology, names)
        planned: dict[str, tuple[str | None, bool]] = {}
        ids: dict[str, str | None] = {}
        for key in topological_order({k: [t.parent] if t.parent else [] for k, t in targets.items()}):
            target = targets[key]
            if target.kind == "image":
                ref = target.repository
                registry.image_reference(ref, _what(target))  # before the engine words it worse
            elif target.parent and ids.get(target.parent) is None:
                ref = None
            else:
                ref = self._final_ref(target, ids.get(target.parent) if target.parent else None)
            ids[key] = self.engine.image_id(ref) if ref else None
            planned[key] = (ref, ids[key] is not None)
        return planned

    # -- per target ----------------------------------------------------------------------

    def _resolve(self, target: ImageTarget) -> None:
        # Concurrent `up`s of one topology (CI jobs on one host) build each image once: the
        # others wait here, then find it by its tag.
        with _exclusive(f"{target.repository}", self._cancel):
            self._resolve_unlocked(target)

    def _resolve_unlocked(self, target: ImageTarget) -> None:
        parent = self.resolved[target.parent] if target.parent else None
        if target.kind == "image":
            image = self._pull_service_image(target)
        elif target.kind == "base":
            image = self._base(target, self.topology.bases[target.name], parent)
        elif target.kind == "mock":
            image = self._build(target, BuildContext(IMAGE_CONTEXT, "Dockerfile"), {}, parent)
        else:
            service = self.topology.services[target.name]
            assert service.build is not None
            context = BuildContext(service.build.context, service.build.dockerfile)
            image = self._build(target, context, dict(service.build.args), parent)
        with self._lock:
            self.resolved[target.key] = image

    def _base(self, target: ImageTarget, base: Base, parent: ResolvedImage | None) -> ResolvedImage:
        if base.bootstrap is not None:
            raw = self._bootstrap(target, base)
            return self._trust_host_ca(target, base, raw)
        if base.image is not None:
            raw = self._pulled(target, base.image, "missing")
            return self._trust_host_ca(target, base, raw)
        assert base.dockerfile is not None and base.context is not None
        context = BuildContext(base.context, os.path.relpath(base.dockerfile, base.context))
        return self._build(target, context, dict(base.args), parent)

    def _pull_service_image(self, target: ImageTarget) -> ResolvedImage:
        return self._pulled(target, target.repository, self.topology.services[target.name].pull_policy)

    def _pulled(self, target: ImageTarget, ref: str, policy: str) -> ResolvedImage:
        """A registry's image for the target's platform, pulled if `policy` says so (emitting 'pull' and 'pulled')."""
        what, platform = _what(target), self._platform_of(target)
        registry.image_reference(ref, what)
        if policy != "always":
            image_id = self.engine.image_id(ref)
            # One made for another platform is pulled again for this one, as Compose does.
            if image_id is not None and (policy == "never" or platforms.of_image(self.engine.inspect_image(ref)) == platform):
                platforms.check_image(self.engine.inspect_image(ref), platform, f"the {what}'s image {ref}")
                return ResolvedImage(target.key, ref, image_id, built=False)
            policy = "always" if image_id is not None and policy != "never" else policy
        if policy != "never":  # 'never' only says the image is missing
            self._emit(target, "pull", ref)
        image_id = registry.ensure_pulled(self.engine, ref, policy, lambda line: self._emit(target, "pull", f"{ref}: {line}"),
                                          what=what, platform=platform)
        platforms.check_image(self.engine.inspect_image(ref), platform, f"the {what}'s image {ref}")
        self._emit(target, "pulled", ref)
        return ResolvedImage(target.key, ref, image_id, built=False, pulled=True)

    def _pull_from_images(self, target: ImageTarget, dockerfile: Path, buildargs: dict[str, str]) -> None:
        """Pull the FROM images a build needs that the engine lacks, with credentials and clear errors."""
        for ref in registry.from_images(dockerfile, buildargs):
            if self.engine.image_id(ref) is None:
                self._pulled(target, ref, "missing")

    def _from_cache(self, target: ImageTarget, ref: str) -> ResolvedImage | None:
        """The image `ref` (repository:content-hash) from the shared cache, or None on a miss."""
        if self.cache is None or not self._may_use_cache(target):
            return None
        self._emit(target, "pull", f"{ref} from the image cache")
        image_id = self.cache.fetch(ref, lambda line: self._emit(target, "pull", f"{ref}: {line}"))
        if image_id is None:
            return None
        self._emit(target, "pulled", f"{ref} from the image cache")
        return ResolvedImage(target.key, ref, image_id, built=False, pulled=True)

    def _to_cache(self, target: ImageTarget, ref: str, built: bool) -> None:
        """Push what was built (or, filling the cache, what it lacks) back to the shared cache."""
        if self.cache is None or not self._may_use_cache(target):
            return
        if built or (self.fill_cache and not self.cache.has(ref)):
            self._emit(target, "push", f"{ref} to the image cache")
            self.cache.store(ref, lambda line: self._emit(target, "push", f"{ref}: {line}"))
            self._emit(target, "pushed", f"{ref} to the image cache")

    def _may_use_cache(self, target: ImageTarget) -> bool:
        # pull_policy 'build' (and 'never') on a service: build it here, never take it from a registry.
        service = self.topology.services.get(target.name) if target.kind == "service" else None
        return service is None or service.pull_policy not in ("build", "never")

    def _bootstrap_ref(self, target: ImageTarget, base: Base) -> str:
        assert base.bootstrap is not None
        return f"{target.repository}-rootfs:" + self._hash(target, {"bootstrap": asdict(base.bootstrap),
                                                                    "recipe": bootstrap.RECIPE})

    def _existing(self, target: ImageTarget, ref: str) -> ResolvedImage | None:
        """`ref` if the engine has it (offered to the image cache) or the image cache does; else None."""
        image_id = self.engine.image_id(ref)
        if image_id is not None:
            self._to_cache(target, ref, built=False)
            return ResolvedImage(target.key, ref, image_id, built=False)
        return self._from_cache(target, ref)

    def _bootstrap(self, target: ImageTarget, base: Base) -> ResolvedImage:
        ref = self._bootstrap_ref(target, base)
        existing = self._existing(target, ref)
        if existing is not None:
            return existing
        spec, platform = base.bootstrap, self._platform_of(target)
        assert spec is not None
        self._emit(target, "bootstrap", f"{spec.distro} {spec.suite} for {platform} with {len(spec.packages)} packages"
                   + ("" if bootstrap.where_it_runs() == "host" else ", in a container (mmdebstrap is not on this host)"))
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"base-{target.name}.log"
        what = f"base '{target.name}' ({spec.distro} {spec.suite}, {platform})"
        with tempfile.TemporaryDirectory(prefix="envctl-bootstrap-") as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            fix = "check the suite, package names and the mirror"
            with open(log_path, "w") as log, self._explained(what, platform, log_path, fix):
                bootstrap.bootstrap(self.engine, spec, platform, tarball, log, what, self._cancel,
                                    warn=lambda message: self.progress(Event("", "warning", message)))
            repository, tag = ref.split(":")
            self._emit(target, "import", ref)
            image_id = self.engine.load_rootfs(tarball, repository, tag, self._rootfs_config(target, tag), platform)
        self._emit(target, "built", ref)
        self._to_cache(target, ref, built=True)
        return ResolvedImage(target.key, ref, image_id, built=True)

    @contextmanager
    def _explained(self, what: str, platform: str, log_path: Path, fix: str | None = None):
        """A failed bootstrap or build says how to fix it: `fix` (else the build's own), or emulation."""
        try:
            yield
        except BuildFailed as exc:
            log_text = log_path.read_text(errors="replace").lower() if log_path.is_file() else ""
            hint = platforms.emulation_hint(platform, self.engine_platform)
            if hint and any(sign in log_text for sign in ("exec format error", "arch-test", "qemu")):
                raise BuildFailed(exc.message, fix=f"{hint}; the full log is {log_path}") from None
            if fix is None:
                raise
            raise BuildFailed(exc.message, fix=f"{fix}; the full log is {log_path}") from None

    def _rootfs_config(self, target: ImageTarget, input_hash: str) -> dict:
        """A bootstrapped root filesystem's image config: what a Debian image's would say, and our labels."""
        return {"Env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8"], "Cmd": ["/bin/bash"],
                "Labels": self._labels(target, "rootfs", input_hash)}

    def _trust_host_ca(self, target: ImageTarget, base: Base, raw: ResolvedImage) -> ResolvedImage:
        bundle = host_ca_bundle() if base.trust_host_ca else None
        if bundle is None:
            return ResolvedImage(target.key, raw.ref, raw.id, raw.built)
        data = bundle.read_bytes()
        ref = _ca_layer_ref(target, raw.id, data, self._platform_of(target))
        existing = self._existing(target, ref)
        if existing is not None:
            return existing
        self._emit(target, "build", "trusting the host's CA bundle")
        repository, tag = ref.split(":")
        image_id = assemble.with_files(
            self.engine, raw.ref, {CA_TARGET: data, "/usr/local/share/ca-certificates/envctl-host-ca.crt": data},
            {name: CA_TARGET for name in CA_ENV}, self._labels(target, "base", tag), ref, "the host's CA bundle")
        self._emit(target, "built", ref)
        self._to_cache(target, ref, built=True)
        return ResolvedImage(target.key, ref, image_id, built=True)

    def _service_ref(self, target: ImageTarget, context: BuildContext, args: dict[str, str], parent_id: str | None) -> str:
        digest = context.digest()
        options = self._build_options(target)
        return f"{target.repository}:" + self._hash(target, {"context": digest, "args": args, "parent": parent_id,
                                                     **({"options": options} if options else {})})

    def _build_options(self, target: ImageTarget) -> dict[str, Any]:
        """A service's build.target, build.labels and build.cache_from, as the engine's build takes them."""
        build = self.topology.services[target.name].build if target.kind == "service" else None
        if build is None:
            return {}
        options: dict[str, Any] = {"target": build.target} if build.target else {}
        if build.labels:
            options["labels"] = dict(build.labels)
        if build.cache_from:
            options["cachefrom"] = list(build.cache_from)
        return options

    def _tag_as_named(self, target: ImageTarget, ref: str) -> None:
        """Compose's `image` beside `build`: the built image also carries that name."""
        service = self.topology.services[target.name] if target.kind == "service" else None
        if service is not None and service.image:
            repository, _, tag = service.image.rpartition(":") if ":" in service.image.split("/")[-1] \
                else (service.image, "", "latest")
            self.engine.tag(ref, repository, tag)

    def _build(self, target: ImageTarget, context: BuildContext, args: dict[str, str],
               parent: ResolvedImage | None) -> ResolvedImage:
        ref = self._service_ref(target, context, args, parent.id if parent else None)
        image_id = self.engine.image_id(ref)
        if image_id is not None:
            self._emit(target, "cached", ref)
            self._maybe_tag_commit(target, ref)
            self._to_cache(target, ref, built=False)
            self._tag_as_named(target, ref)
            return ResolvedImage(target.key, ref, image_id, built=False)
        cached = self._from_cache(target, ref)
        if cached is not None:
            self._maybe_tag_commit(target, ref)
            return cached
        buildargs = dict(args)
        if parent is not None:
            buildargs["BASE_IMAGE"] = parent.ref
        self._pull_from_images(target, context.dockerfile_path, buildargs)
        self._emit(target, "build", ref)
        label = _label_line(self._labels(target, target.kind, ref.split(":")[1]))
        what = f"{target.kind} '{target.name}' ({context.dockerfile_path})"
        plan = secretbuild.plan(self._dockerfile(context.dockerfile_path)[0], context.dockerfile_path)
        self.logs.mkdir(parents=True, exist_ok=True)
        log_name = f"{target.name}.log" if target.kind == "service" else f"{target.kind}-{target.name}.log"
        with open(self.logs / log_name, "w") as log_file:
            log = MaskingWriter(log_file, self.masker)
            image_id: str | None = None
            if plan.needs_secrets:
                image_id = self._build_in_parts(target, context, buildargs, plan, ref, label, log, what)
            else:
                image_id = self._assembled(target, context, buildargs, ref, log, what)
            if image_id is None:
                image_id = self._by_builder(target, context, buildargs, ref, label, log, what)
        self._emit(target, "built", ref)
        self._maybe_tag_commit(target, ref)
        self._to_cache(target, ref, built=True)
        self._tag_as_named(target, ref)
        return ResolvedImage(target.key, ref, image_id, built=True)

    def _assembled(self, target: ImageTarget, context: BuildContext, buildargs: dict[str, str], ref: str,
                   log, what: str) -> str | None:
        """A code-only Dockerfile on a local base, written without the builder; or the builder makes the
        Dockerfile's prefix up to its last RUN (say) without envctl's LABEL step, and the code-only tail
        is written on it. None: the builder's job, the reason in the log. A tail the assembler then leaves
        to the builder after all gets the builder's image of the whole Dockerfile, and the prefix goes."""
        options = self._build_options(target)
        if not assemble.enabled() or set(options) - {"labels", "cachefrom"}:
            return None
        own = self._labels(target, target.kind, ref.split(":")[1])
        text, parsed = self._dockerfile(context.dockerfile_path)
        prefix_id = None
        if not _utf8(text):  # the builder has the file as it is; what envctl would write may differ
            log.write(f"envctl: not assembled ({NOT_UTF8}); building with the builder\n")
            return None
        if isinstance(parsed, codeonly.NotCodeOnly):
            cut = codeonly.split(text)
            if isinstance(cut, codeonly.NotCodeOnly):
                log.write(f"envctl: not assembled ({parsed.reason}; no code-only tail: {cut.reason}); "
                          "building with the builder\n")
                return None
            log.write("envctl: the builder makes the Dockerfile up to its last step that needs it; "
                      "envctl writes the rest\n")
            prefix_id = self._prefix(target, context, buildargs, cut.prefix, log, what)
            if not prefix_id:
                log.write("envctl: the builder did not say which image the prefix is; building with the builder\n")
                return None
            parsed = cut.tail
        try:
            image_id = assemble.assemble(self.engine, context, parsed, buildargs, ref,
                                         {**options.get("labels", {}), **own}, self._platform_of(target),
                                         context.generated_dockerfile((_label_line(own),)), on=prefix_id)
        except assemble.NotAssembled as exc:
            log.write(f"envctl: not assembled ({exc}); building with the builder\n")
            if prefix_id is None:
                return None
            try:  # the builder's build first: it takes the prefix's steps from its cache
                return self._by_builder(target, context, buildargs, ref, _label_line(own), log, what)
            finally:
                self._remove_prefix(prefix_id, log)
        except BaseException:  # cancelled, the engine gone, a bug: no untagged prefix is left behind
            if prefix_id is not None:
                self._remove_prefix(prefix_id, log, quiet=True)
            raise
        if prefix_id is not None:
            log.write(f"envctl: assembled {ref} on the builder's {prefix_id[7:19]}: its tail's files and settings\n")
        else:
            log.write(f"envctl: assembled {ref} without the builder: the base's layers and one layer of files\n")
        return image_id

    def _by_builder(self, target: ImageTarget, context: BuildContext, buildargs: dict[str, str], ref: str,
                    label: str, log, what: str) -> str:
        """The builder's image of the whole Dockerfile, tagged `ref`, with envctl's `label` line as its last step."""
        archive, dockerfile = context.archive((label,))
        with archive, self._explained(what, self._platform_of(target), Path(log.name)):
            return self.engine.build(archive, dockerfile=dockerfile, tag=ref, buildargs=buildargs, log=log, what=what,
                                     cancel=self._cancel,
                                     options={**self._build_options(target), "platform": self._platform_of(target)})

    def _remove_prefix(self, prefix_id: str, log, quiet: bool = False) -> None:
        """Remove the builder's untagged image of a prefix the assembler did not use, so that no dangling
        image is left. It stays (never forced) when it has a tag (the builder's cache made it the image of
        a Dockerfile someone tagged: removing it by id would remove that image), when the builder's image
        took it as a parent from its cache (a conflict), or a container uses it. `quiet`: another error is
        on its way out, and this one must not hide it."""
        try:
            tags = [t for t in self.engine.inspect_image(prefix_id).get("RepoTags") or [] if t != "<none>:<none>"]
            if tags:
                log.write(f"envctl: the prefix {prefix_id[7:19]} stays: it is also {', '.join(tags)}\n")
                return
            self.engine.remove_image(prefix_id)
        except EngineUnavailable:
            if not quiet:
                raise
        except EnvctlError as exc:
            log.write(f"envctl: the prefix {prefix_id[7:19]} stays: {exc.message}\n")

    def _prefix(self, target: ImageTarget, context: BuildContext, buildargs: dict[str, str], prefix: str, log,
                what: str) -> str:
        """The builder's image of the Dockerfile's `prefix`, untagged (the assembled image names it as its
        parent); no LABEL step and no `labels` option (each a step: the assembler sets them)."""
        archive, dockerfile = context.archive(dockerfile_text=prefix)
        options = {k: v for k, v in self._build_options(target).items() if k != "labels"}
        with archive, self._explained(what, self._platform_of(target), Path(log.name)):
            return self.engine.build(archive, dockerfile=dockerfile, tag="", buildargs=buildargs, log=log, what=what,
                                     cancel=self._cancel, options={**options, "platform": self._platform_of(target)})

    def _build_in_parts(self, target: ImageTarget, context: BuildContext, buildargs: dict[str, str],
                        plan: secretbuild.Plan, ref: str, label: str, log, what: str) -> str:
        """A Dockerfile with secret steps: its mounts checked, the secrets read and masked in the log, then built."""
        service = self.topology.services.get(target.name) if target.kind == "service" else None
        build = service.build if service is not None else None
        where = f"services.{target.name}"
        ssh = secretsteps.ssh_agents(build.ssh if build else (), where)
        for step, _ in plan.parts:
            secretbuild.check_ids(step, context.dockerfile_path, build.secrets if build else (), ssh, where)
        values = self._secret_values([m.id for step, _ in plan.parts for m in step.mounts if m.kind == "secret"])
        self.masker.add(values.values())
        return secretsteps.build_in_parts(self.engine, context, plan, buildargs=buildargs, values=values, ssh=ssh,
                                          ref=ref, label=label, log=log, what=what, cancel=self._cancel)

    def _secret_values(self, names: list[str]) -> dict[str, str]:
        values = {}
        for name in dict.fromkeys(names):
            secret = self.topology.secrets[name]
            if secret.value is None:
                source = f"the file {secret.file}" if secret.file else f"the host variable {secret.environment}"
                raise EnvctlError(f"secret '{name}' comes from {source}, which is missing or not set",
                                  fix=f"create the file, or export {secret.environment} before running envctl"
                                  if not secret.file else f"create {secret.file} (keep it out of git)")
            values[name] = secret.value
        return values

    def _maybe_tag_commit(self, target: ImageTarget, ref: str) -> None:
        if self.tag_commit and self.commit:
            self.engine.tag(ref, target.repository, f"git-{self.commit[:12]}")

    def _labels(self, target: ImageTarget, kind: str, input_hash: str) -> dict[str, str]:
        out = {labels.MANAGED: "true", labels.PROJECT: self.topology.name, labels.IMAGE_KIND: kind,
               "envctl.name": target.name, labels.PLATFORM: self._platform_of(target)}
        if input_hash:
            out[labels.INPUT_HASH] = input_hash
        if self.commit:
            out[labels.GIT_COMMIT] = self.commit
        return out

    def _emit(self, target: ImageTarget, phase: str, detail: str = "") -> None:
        self.progress(Event(target.subject, phase, detail))

    # -- for `images --prune` ------------------------------------------------------------

    def _candidate_refs(self, target: ImageTarget, final: str | None) -> list[str]:
        refs = [final] if final else []
        if target.kind == "base" and self.topology.bases[target.name].bootstrap is not None:
            refs.append(self._bootstrap_ref(target, self.topology.bases[target.name]))
        return refs

    def _final_ref(self, target: ImageTarget, parent_id: str | None) -> str | None:
        if target.kind == "mock":
            return self._service_ref(target, BuildContext(IMAGE_CONTEXT, "Dockerfile"), {}, parent_id)
        if target.kind == "service":
            service = self.topology.services[target.name]
            assert service.build is not None
            context = BuildContext(service.build.context, service.build.dockerfile)
            return self._service_ref(target, context, dict(service.build.args), parent_id)
        base = self.topology.bases[target.name]
        if base.dockerfile is not None and base.context is not None:
            context = BuildContext(base.context, os.path.relpath(base.dockerfile, base.context))
            return self._service_ref(target, context, dict(base.args), parent_id)
        raw_ref = self._bootstrap_ref(target, base) if base.bootstrap else base.image
        raw_id = self.engine.image_id(raw_ref) if raw_ref else None
        bundle = host_ca_bundle() if base.trust_host_ca else None
        if raw_id is None:
            return None
        if bundle is None:
            return raw_ref
        return _ca_layer_ref(target, raw_id, bundle.read_bytes(), self._platform_of(target))


@contextmanager
def _exclusive(name: str, cancel: threading.Event):
    """A host-wide lock per image repository and engine, given up if `cancel` is set while waiting."""
    engine = os.environ.get("DOCKER_HOST", "local")
    digest = hashlib.sha256(f"{engine} {name}".encode()).hexdigest()[:24]
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "envctl" / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / f"{digest}.lock"))
    while True:
        try:
            lock.acquire(timeout=0.2)
            break
        except Timeout:
            if cancel.is_set():
                raise Cancelled(f"stopped while waiting for another envctl building {name}") from None
    try:
        yield
    finally:
        lock.release()


NOT_UTF8 = "the Dockerfile has bytes that are not UTF-8"


def _utf8(text: str) -> bool:
    """Whether a Dockerfile read with surrogateescape was UTF-8 throughout."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _label_line(values: dict[str, str]) -> str:
    """One LABEL instruction for all labels (each instruction is a build step)."""
    return "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(values.items()))


def _ca_layer_ref(target: ImageTarget, raw_id: str, bundle: bytes, platform: str) -> str:
    return f"{target.repository}:" + _hash({"raw": raw_id, "ca": hashlib.sha256(bundle).hexdigest(), "platform": platform})


@dataclass(frozen=True)
class ImageRow:
    """One of the project's images on the engine, for `envctl images`."""

    ref: str
    id: str
    size: int
    created: int
    kind: str
    name: str
    current: bool  # the topology, as it is now, produces this image
    in_use: bool  # a container of some run of the project uses it
    from_cache: bool = False  # pulled from the shared image cache rather than built here


def project_images(topology: Topology, engine: Engine) -> list[ImageRow]:
    expected = ImageBuilder(topology, engine).expected_refs()
    used = {c.image_id for c in engine.containers({labels.PROJECT: topology.name})}
    pulled = registry.from_cache(state_dir(topology) / registry.CACHE_RECORD)
    rows = []
    for image in engine.images({labels.PROJECT: topology.name}):
        image_labels = image.get("Labels") or {}
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"] or ["<untagged>"]
        for ref in tags:
            current = ref in expected or (ref.split(":")[-1].startswith("git-") and
                                          any(image["Id"] == engine.image_id(e) for e in expected))
            rows.append(ImageRow(ref, image["Id"], image.get("Size", 0), image.get("Created", 0),
                                 image_labels.get(labels.IMAGE_KIND, "?"), image_labels.get("envctl.name", "?"),
                                 current, image["Id"] in used, image["Id"] in pulled))
    return sorted(rows, key=lambda r: (r.kind != "rootfs", r.kind != "base", r.ref))


def prune_images(topology: Topology, engine: Engine) -> list[ImageRow]:
    """Remove the project's images the topology no longer produces and no container uses."""
    rows = project_images(topology, engine)
    keep_ids = {r.id for r in rows if r.current or r.in_use}
    removed = []
    for row in rows:
        if row.id in keep_ids:
            continue
        engine.remove_image(row.ref if row.ref != "<untagged>" else row.id)
        removed.append(row)
    return removed


def _what(target: ImageTarget) -> str:
    """Where an image name comes from, for its errors: "service 'db'", "base 'debian'"."""
    return {"image": f"service '{target.name}'", "base": f"base '{target.name}'"}.get(
        target.kind, f"{target.kind} '{target.name}'")
