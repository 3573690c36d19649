"""Loading `envctl.yaml`: parse, interpolate host variables, validate, build the model.

Every problem is collected with its file, line and key path, so one run of `envctl config`
shows all of them at once. Nothing here touches Docker.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from envctl.durations import EXAMPLES as DURATION_EXAMPLES
from envctl.durations import DurationError, parse_duration
from envctl.errors import Problem, TopologyError
from envctl.imageref import registry_location_problem
from envctl.mocks.jsonpath import parse_json_path
from envctl.topology import compose_keys
from envctl.topology.compose_keys import PUBLISH_BEYOND_LOOPBACK
from envctl.topology.interpolation import (
    InterpolationError,
    Interpolator,
    Reference,
    Template,
    references,
)
from envctl.topology.dotenv import DotenvError, parse_dotenv
from envctl.topology.model import (
    CONDITIONS,
    PULL_POLICIES,
    READY,
    STARTED,
    Base,
    Bootstrap,
    Build,
    Dependency,
    Fault,
    FaultStep,
    LOOPBACK,
    Healthcheck,
    Mock,
    Mount,
    PortSpec,
    Probe,
    Scrub,
    Secret,
    Service,
    Topology,
    Volatile,
)
from envctl.topology.ports import PROTOCOLS as PORT_PROTOCOLS
from envctl.topology.ports import PortMapping, PortSyntaxError, expand, parse_short
from envctl.topology.files import COMPOSE_FILES, DEFAULT_FILE, Document, discover, read_documents
from envctl.topology.source import KeyPath, format_key_path


TOP_KEYS = ("name", "bases", "services", "mocks", "volumes", "secrets", "version", "registry", "cache",
            "networks", "configs")
SECRET_KEYS = ("file", "environment")
BASE_KEYS = ("bootstrap", "image", "from", "dockerfile", "context", "args", "trust_host_ca")
BOOTSTRAP_KEYS = ("distro", "suite", "packages", "mirror", "variant")
SERVICE_KEYS = (
    "image", "build", "base", "command", "entrypoint", "environment", "env_file", "ports",
    "depends_on", "healthcheck", "volumes", "working_dir", "user", "init", "profiles", "probe",
    "stop_grace_period", "stop_signal", "mem_limit", "docker_socket", "pull_policy",
    *compose_keys.SERVICE_KEYS, *compose_keys.REFUSED,
)
LONG_PORT_KEYS = ("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol")
# Host addresses published as 127.0.0.1 (empty: Compose's default, every address, which envctl narrows).
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
BUILD_KEYS = ("context", "dockerfile", "args", "secrets", "ssh", "target", "labels", "cache_from")
# Mounting the engine's socket gives a container the whole engine (root on the host).
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
PROBE_KEYS = ("http", "tcp", "cmd", "port", "timeout", "interval")
HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")
MOCK_KEYS = ("cassettes", "upstream", "match_on", "allow_repeats", "strict", "scrub", "volatile", "fault",
             "scenarios", "replay_latency", "base")
FAULT_STEP_KEYS = ("kind", "method", "path", "status", "delay_ms", "times", "probability", "seed")
FAULT_KINDS = ("status", "reset", "delay")
VOLATILE_KEYS = ("json", "headers", "query", "form", "recorded_as")
VOLATILE_RECORDED_AS = ("kept", "placeholder")
SCRUB_KEYS = ("headers", "query", "body_json_keys")
FAULT_KEYS = ("latency_ms", "error_rate", "seed")
VCR_MATCHERS = ("method", "scheme", "host", "port", "path", "query", "uri", "body", "raw_body", "headers")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def load_topology(file: str | Path | Sequence[str | Path] | None = None,
                  environ: Mapping[str, str] | None = None,
                  env_files: Sequence[str | Path] | None = None) -> Topology:
    """Load and validate a topology (one file, several merged, or a directory's); raise
    `TopologyError` listing every problem. `env_files` replace the `.env` beside it."""
    files = topology_files(file)
    source = read_documents(files)
    if source.problems:
        raise TopologyError(source.problems)
    host = os.environ if environ is None else environ
    variables = {**_dotenv(files[0].parent, source, host, env_files), **host}
    if source.problems:
        raise TopologyError(source.problems)
    topology = _Loader(source, Interpolator(variables, unset=set())).topology()
    if source.problems or topology is None:
        raise TopologyError(source.problems)
    return topology


def topology_files(file: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """The files to load: those named, or the topology files of the directory named (or of '.')."""
    if file is None:
        file = "."
    named = [Path(f) for f in ([file] if isinstance(file, (str, Path)) else file)] or [Path(".")]
    if len(named) == 1 and named[0].is_dir():
        directory = named[0].absolute()
        found = discover(directory)
        if not found:
            raise TopologyError([Problem(directory / DEFAULT_FILE, None, "", "no topology file here",
                                         f"create {DEFAULT_FILE} (see docs/topology.md), or a Compose file "
                                         f"({', '.join(COMPOSE_FILES)}), or pass -f FILE")])
        return found
    missing = [Problem(p.absolute(), None, "", "no topology file here", "fix the path, or pass -f FILE")
               for p in named if not p.is_file()]
    if missing:
        raise TopologyError(missing)
    return [p.absolute() for p in named]


def _dotenv(root: Path, source: Document, environ: Mapping[str, str],
            env_files: Sequence[str | Path] | None) -> dict[str, str]:
    """The variables of the env files named (`--env-file`), else of `.env` beside the first file."""
    files = [Path(f).absolute() for f in env_files] if env_files else [root / ".env"]
    values: dict[str, str] = {}
    for dotenv in files:
        if not dotenv.is_file():
            if env_files:
                source.problems.append(Problem(dotenv, None, "", "no env file here", "fix the --env-file path"))
            continue
        lookup = lambda name: environ.get(name, values.get(name))  # noqa: E731 - host first, then earlier files
        try:
            values.update(parse_dotenv(dotenv.read_text(encoding="utf-8"), lookup))
        except (OSError, UnicodeDecodeError) as exc:
            source.problems.append(Problem(dotenv, None, "", f"cannot read it: {exc}", "fix or remove it"))
        except DotenvError as exc:
            source.problems.append(Problem(dotenv, exc.line, "", exc.message, exc.fix))
    return values


class _Loader:
    """Turns the raw document into the model, recording problems on the source."""

    def __init__(self, source: Document, interpolator: Interpolator) -> None:
        self.source = source
        self.interp = interpolator
        self.included_interps: dict[tuple[Path, ...], Interpolator] = {}
        self.root = source.file.parent
        self.declared: set[str] = set()  # every service and mock name, parsed or not
        self.notes: list[str] = []  # what loading changed or ignored, for `envctl config`
        self.refusals = compose_keys.Refusals()
        self.volume_options: dict[str, compose_keys.Volume] = {}

    # -- small typed readers -------------------------------------------------------------

    def problem(self, path: KeyPath, message: str, fix: str | None = None) -> None:
        self.source.problem(path, message, fix)

    def note(self, path: KeyPath, message: str) -> None:
        self.notes.append(f"{format_key_path(path)}: {message}")

    def mapping(self, value: Any, path: KeyPath, allowed: tuple[str, ...], what: str) -> dict | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"{what} must be a mapping, not {_kind(value)}", f"write {what} as 'key: value' lines")
            return None
        for key in value:
            if key.startswith("x-"):
                continue  # Compose extension fields, for anchors
            if key not in allowed:
                self.problem(path + (key,), f"unknown key '{key}' in {what}", _key_fix(key, allowed))
        return {k: v for k, v in value.items() if k in allowed}

    def string(self, value: Any, path: KeyPath, *, template: bool = False) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            self.problem(path, f"expected a string, not {_kind(value)}", "write a string (quote it if needed)")
            return None
        try:
            interp = self.interp_at(path)
            return interp.template(str(value)) if template else interp.plain(str(value))
        except InterpolationError as exc:
            self.problem(path, str(exc), exc.fix)
            return None

    def interp_at(self, path: KeyPath) -> Interpolator:
        """The variables for the value at `path`: the project's, and for a key from an included
        file, its own env files' for the names the project leaves unset (as Compose's include)."""
        origin = self.source.origin(path)
        env_files = origin.env_files if origin else ()
        if not env_files:
            return self.interp
        if env_files not in self.included_interps:
            variables = dict(self.interp.variables)
            for file in env_files:
                try:
                    found = parse_dotenv(file.read_text(encoding="utf-8"), variables.get)
                except (OSError, UnicodeDecodeError, DotenvError) as exc:
                    self.problem(path, f"cannot read the included file's env file {file}: {exc}", "fix or remove it")
                    found = {}
                for key, value in found.items():
                    variables.setdefault(key, value)
            self.included_interps[env_files] = Interpolator(variables, unset=self.interp.unset)
        return self.included_interps[env_files]

    def typed(self, value: Any, path: KeyPath, cast: Callable[[str], Any]) -> Any:
        """A typed field's value: a string is interpolated, then cast as Compose casts it.
        _FAILED when interpolation failed (already reported)."""
        if not isinstance(value, str):
            return value
        text = self.string(value, path)
        return _FAILED if text is None else cast(text)

    def boolean(self, value: Any, path: KeyPath) -> bool | None:
        """true/false, or a string Compose reads as one (yes/no, on/off)."""
        value = self.typed(value, path, lambda text: _BOOLEAN_WORDS.get(text.lower(), text))
        if value is not _FAILED and not isinstance(value, bool):
            self.problem(path, f"expected true or false, not {value!r}" if isinstance(value, str)
                         else f"expected true or false, not {_kind(value)}", "write true or false")
        return value if isinstance(value, bool) else None

    def integer(self, value: Any, path: KeyPath) -> int | None:
        value = self.typed(value, path, lambda text: int(text) if re.fullmatch(r"\s*[-+]?\d+\s*", text) else text)
        if value is not _FAILED and (isinstance(value, bool) or not isinstance(value, int)):
            self.problem(path, f"{value!r} is not a whole number", "write a whole number, e.g. 3")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def byte_size(self, value: Any, path: KeyPath) -> int | None:
        """Compose's sizes: 512m, 1g, 64k, or a plain number of bytes."""
        match = re.fullmatch(r"(\d+)\s*([bkmg]?)b?", str(value).strip().lower()) if isinstance(value, (str, int)) else None
        if match is None or isinstance(value, bool):
            self.problem(path, f"{value!r} is not a size", "write e.g. 256m or 1g")
            return None
        return int(match.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2)]

    def duration(self, value: Any, path: KeyPath) -> float | None:
        if isinstance(value, str):
            value = self.string(value, path)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except DurationError:
            self.problem(path, f"{value!r} is not a duration", f"write {DURATION_EXAMPLES}")
            return None

    def port_number(self, value: Any, path: KeyPath) -> int | None:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.problem(path, f"{value!r} is not a port number", "write a number from 1 to 65535")
            return None
        return value

    def string_list(self, value: Any, path: KeyPath, what: str) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problem(path, f"{what} must be a list, not {_kind(value)}", f"write {what} as a YAML list")
            return None
        items = [self.string(item, path + (i,)) for i, item in enumerate(value)]
        return None if any(i is None for i in items) else tuple(items)

    def command(self, value: Any, path: KeyPath) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            text = self.string(value, path)
            if text is None:
                return None
            try:
                return tuple(shlex.split(text))
            except ValueError as exc:
                self.problem(path, f"cannot split this command: {exc}", "balance the quotes, or write a list")
                return None
        return self.string_list(value, path, "a command")

    def name_of(self, name: Any, path: KeyPath, what: str) -> bool:
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.problem(path, f"{name!r} is not a valid {what} name",
                         "use lower-case letters, digits, '-' and '_', starting with a letter or digit")
            return False
        return True

    def relative_path(self, value: Any, path: KeyPath) -> Path | None:
        text = self.string(value, path)
        if text is None:
            return None
        return self.host_path(text, path)

    def host_path(self, text: str, path: KeyPath) -> Path | None:
        """`text` as a path on the host: relative to the topology's directory, `~` expanded."""
        if "\x00" in text:  # the OS would refuse it with a ValueError
            self.problem(path, f"{text!r} is not a usable path: it contains a NUL character",
                         "remove the NUL character")
            return None
        return (self.source.directory(path) / os.path.expanduser(text)).resolve()

    # -- sections ------------------------------------------------------------------------

    def topology(self) -> Topology | None:
        top = self.mapping(self.source.data, (), TOP_KEYS, "the topology")
        if top is None:
            return None
        name = top.get("name")
        if isinstance(name, str):  # Compose interpolates the project name too
            name = self.string(name, ("name",)) or None  # failed (reported) or empty: the directory's
        if name is None:
            name = re.sub(r"[^a-z0-9_-]", "-", self.root.name.lower()).strip("-_") or "envctl"
        elif self.name_of(name, ("name",), "project"):
            pass
        else:
            name = "invalid"
        if not top.get("services") and not top.get("mocks"):
            self.problem(("services",), "the topology has no services", "add a 'services:' section")
        if "version" in top:
            self.note(("version",), "ignored, as Compose v2 ignores it")
        bases = self.section(top.get("bases"), ("bases",), "bases", self.base)
        services = self.section(top.get("services"), ("services",), "services", self.service)
        mocks = self.section(top.get("mocks"), ("mocks",), "mocks", self.mock)
        volumes = self.section(top.get("volumes"), ("volumes",), "volumes", self.volume)
        secrets = self.section(top.get("secrets"), ("secrets",), "secrets", self.secret)
        networks = self.section(top.get("networks"), ("networks",), "networks",
                                lambda n, v, p: compose_keys.network(self, n, v, p))
        configs = self.section(top.get("configs"), ("configs",), "configs",
                               lambda n, v, p: compose_keys.config(self, n, v, p))
        ignored = self.refusals.report(self)
        topology = Topology(
            name=name, file=self.source.file, bases=bases, services=services, mocks=mocks,
            volumes=tuple(volumes), secrets=secrets, notes=tuple(self.notes), **self.registries(top),
            files=self.source.files, networks=networks, configs=configs,
            volume_options={n: v for n, v in self.volume_options.items() if v != compose_keys.Volume(n)},
            warnings=tuple(f"variable {v} is not set; using an empty string"
                           for v in sorted(self.interp.unset or ())) + tuple(ignored),
        )
        self.check_cross_references(topology)
        return topology

    def registries(self, top: dict) -> dict[str, str]:
        """`registry:` (where `envctl push` pushes) and `cache:` (the shared image cache)."""
        out = {}
        for key in ("registry", "cache"):
            if key in top:
                text = self.string(top[key], (key,))
                if text is not None and registry_location_problem(text):
                    self.problem((key,), registry_location_problem(text), "write HOST[:PORT]/PREFIX, "
                                 "e.g. 'registry.example.com:5000/team'")
                elif text is not None:
                    out[key] = text
        return out

    def pull_policy(self, raw: Any, path: KeyPath, body: dict) -> str | None:
        policy = self.string(raw, path)
        if policy is None:
            return None
        if policy not in PULL_POLICIES:
            self.problem(path, f"{policy!r} is not a pull policy", "use one of: " + ", ".join(PULL_POLICIES))
            return None
        if policy == "build" and "build" not in body and "base" not in body:
            self.problem(path, "'pull_policy: build' needs a 'build:' to build from",
                         "use 'always', 'missing' or 'never' for an 'image:' service")
            return None
        return policy

    def section(self, value: Any, path: KeyPath, what: str, parse: Callable) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"'{what}' must be a mapping of names, not {_kind(value)}", f"write '{what}:' as 'name: ...' entries")
            return {}
        out = {}
        for name, body in value.items():
            if name.startswith("x-"):
                continue
            if not self.name_of(name, path + (name,), what.rstrip("s")):
                continue
            if what in ("services", "mocks"):
                self.declared.add(name)
            item = parse(name, body, path + (name,))
            if item is not None:
                out[name] = item
        return out

    def volume(self, name: str, raw: Any, path: KeyPath) -> str | None:
        options = compose_keys.volume(self, name, raw, path)
        if options is not None:
            self.volume_options[name] = options
        return name

    def secret(self, name: str, raw: Any, path: KeyPath) -> Secret | None:
        body = self.mapping(raw, path, SECRET_KEYS, f"secret '{name}'")
        if body is None:
            return None
        if len(body) != 1:
            self.problem(path, f"secret '{name}' needs exactly one of 'file' or 'environment'",
                         "write 'file: ./path/to/secret' or 'environment: HOST_VARIABLE'")
            return None
        if "file" in body:
            file = self.relative_path(body["file"], path + ("file",))
            if file is None:
                return None
            value = file.read_text(errors="replace").strip() if file.is_file() else None
            return Secret(name, file=file, value=value)
        variable = self.string(body["environment"], path + ("environment",))
        if variable is None:
            return None
        return Secret(name, environment=variable, value=self.interp_at(path).variables.get(variable))

    def base(self, name: str, raw: Any, path: KeyPath) -> Base | None:
        body = self.mapping(raw, path, BASE_KEYS, f"base '{name}'")
        if body is None:
            return None
        kinds = [k for k in ("bootstrap", "image", "dockerfile") if k in body]
        if len(kinds) != 1:
            self.problem(path, f"base '{name}' needs exactly one of bootstrap, image or dockerfile (has {len(kinds)})",
                         "give 'bootstrap: {distro: debian, suite: bookworm}', 'image: NAME', "
                         "or 'from: BASE' with 'dockerfile: PATH'")
            return None
        if "from" in body and "dockerfile" not in body:
            self.problem(path + ("from",), "'from' needs a 'dockerfile' that builds on it", "add 'dockerfile: PATH'")
        base = Base(name=name)
        fields: dict[str, Any] = {}
        if "bootstrap" in body:
            fields["bootstrap"] = self.bootstrap(body["bootstrap"], path + ("bootstrap",))
        if "image" in body:
            fields["image"] = self.string(body["image"], path + ("image",))
        if "from" in body:
            fields["parent"] = self.string(body["from"], path + ("from",))
        if "dockerfile" in body:
            dockerfile = self.relative_path(body["dockerfile"], path + ("dockerfile",))
            if dockerfile and not dockerfile.is_file():
                self.problem(path + ("dockerfile",), f"no Dockerfile at {dockerfile}", "fix the path (relative to the topology file)")
            fields["dockerfile"] = dockerfile
            context = self.relative_path(body["context"], path + ("context",)) if "context" in body else (
                dockerfile.parent if dockerfile else None)
            if context and not context.is_dir():
                self.problem(path + ("context",), f"no directory at {context}", "fix the path (relative to the topology file)")
            fields["context"] = context
        if "args" in body:
            fields["args"] = self.args(body["args"], path + ("args",))
        if "trust_host_ca" in body:
            fields["trust_host_ca"] = self.boolean(body["trust_host_ca"], path + ("trust_host_ca",))
        if any(v is None for v in fields.values()):
            return None
        return Base(**{**base.__dict__, **fields})

    def bootstrap(self, raw: Any, path: KeyPath) -> Bootstrap | None:
        body = self.mapping(raw, path, BOOTSTRAP_KEYS, "bootstrap")
        if body is None:
            return None
        distro = self.string(body.get("distro", "debian"), path + ("distro",))
        if distro not in (None, "debian"):
            self.problem(path + ("distro",), f"cannot bootstrap distro {distro!r}",
                         "use 'distro: debian', or an 'image:' or 'dockerfile:' base")
            return None
        if "suite" not in body:
            self.problem(path, "bootstrap needs a 'suite'", "add 'suite: bookworm' (or another Debian release)")
            return None
        suite = self.string(body["suite"], path + ("suite",))
        packages = self.string_list(body.get("packages", []), path + ("packages",), "packages")
        mirror = self.string(body["mirror"], path + ("mirror",)) if "mirror" in body else None
        variant = self.string(body.get("variant", "minbase"), path + ("variant",))
        if None in (distro, suite, packages, variant) or ("mirror" in body and mirror is None):
            return None
        return Bootstrap(distro=distro, suite=suite, packages=packages, mirror=mirror, variant=variant)

    def args(self, raw: Any, path: KeyPath) -> tuple[tuple[str, str], ...] | None:
        pairs = self.key_values(raw, path, "args")
        if pairs is None:
            return None
        out = []
        for key, value in pairs:
            text = self.string(value if value is not None else "", path + (key,))
            if text is None:
                return None
            out.append((key, text))
        return tuple(out)

    def key_values(self, raw: Any, path: KeyPath, what: str) -> list[tuple[str, Any]] | None:
        """A Compose map-or-list (``KEY: value`` or ``- KEY=value``)."""
        if isinstance(raw, dict):
            return list(raw.items())
        if isinstance(raw, list):
            pairs = []
            for i, item in enumerate(raw):
                if not isinstance(item, str):
                    self.problem(path + (i,), f"expected 'KEY=value', not {_kind(item)}", "write 'KEY=value'")
                    return None
                key, sep, value = item.partition("=")
                pairs.append((key, value if sep else None))
            return pairs
        self.problem(path, f"{what} must be a mapping or a list, not {_kind(raw)}", "write 'KEY: value' lines")
        return None

    def service(self, name: str, raw: Any, path: KeyPath) -> Service | None:
        body = self.mapping(raw, path, SERVICE_KEYS, f"service '{name}'")
        if body is None:
            return None
        fields: dict[str, Any] = {"name": name, "line": self.source.line(path)}
        runtime = compose_keys.ServiceKeys(self, self.refusals).parse(name, body, path, raw)
        ok = runtime is not None
        fields.update(runtime or {})

        def put(key: str, value: Any) -> None:
            nonlocal ok
            if value is None:
                ok = False
            fields[key] = value

        if "image" in body:
            put("image", self.string(body["image"], path + ("image",)))
        if "build" in body:
            put("build", self.build(body["build"], path + ("build",)))
        if "base" in body:
            put("base", self.string(body["base"], path + ("base",)))
        if "image" in body and "base" in body and "build" not in body:
            self.problem(path + ("image",), f"service '{name}' has 'image' together with 'base'",
                         "use 'image' to run an existing image, or 'base' to run one of the project's bases")
            ok = False
        if not any(k in body for k in ("image", "build", "base")):
            self.problem(path, f"service '{name}' has no image",
                         "add 'build: DIR' (with 'base: BASE'), 'base: BASE' to run a base, or 'image: NAME'")
            ok = False
        for key in ("command", "entrypoint"):
            if key in body:
                put(key, self.command(body[key], path + (key,)))
        put("environment", self.environment(body, path))
        if "ports" in body:
            put("ports", self.ports(body["ports"], path + ("ports",), raw))
        if "depends_on" in body:
            put("depends_on", self.depends_on(body["depends_on"], path + ("depends_on",)))
        if "healthcheck" in body:
            put("healthcheck", self.healthcheck(body["healthcheck"], path + ("healthcheck",)))
        if "volumes" in body:
            put("volumes", self.volumes(body["volumes"], path + ("volumes",)))
        for key in ("working_dir", "user"):
            if key in body:
                put(key, self.string(body[key], path + (key,)))
        if "init" in body:
            put("init", self.boolean(body["init"], path + ("init",)))
        if "profiles" in body:
            put("profiles", self.string_list(body["profiles"], path + ("profiles",), "profiles"))
        if "stop_signal" in body:
            signal_name = self.string(body["stop_signal"], path + ("stop_signal",))
            if signal_name is not None and not re.match(r"^(SIG[A-Z0-9]+|\d+)$", signal_name):
                self.problem(path + ("stop_signal",), f"{signal_name!r} is not a signal", "write e.g. SIGINT")
                signal_name = None
            put("stop_signal", signal_name)
        if "stop_grace_period" in body:
            put("stop_grace_period", self.duration(body["stop_grace_period"], path + ("stop_grace_period",)))
        if "mem_limit" in body:
            put("mem_limit", self.byte_size(body["mem_limit"], path + ("mem_limit",)))
        if "docker_socket" in body:
            put("docker_socket", self.boolean(body["docker_socket"], path + ("docker_socket",)))
        if "pull_policy" in body:
            put("pull_policy", self.pull_policy(body["pull_policy"], path + ("pull_policy",), body))
        for i, mount in enumerate(fields.get("volumes") or ()):
            if mount.kind == "bind" and mount.source in DOCKER_SOCKETS and not fields.get("docker_socket"):
                if compose_keys.allowed(self, raw, path, compose_keys.DOCKER_SOCKET):
                    fields["docker_socket"] = True
                    continue
                self.problem(path + ("volumes", i), f"service '{name}' mounts the Docker engine's socket, which "
                             "gives it control of the engine (and root on the host)",
                             "remove the mount; if the service truly needs the engine, opt in with "
                             f"'{compose_keys.ALLOW_KEY}: [docker-socket]' (or 'docker_socket: true') on it, or "
                             "'envctl --allow docker-socket'")
                ok = False
        for link in fields.get("links") or ():
            target = link.partition(":")[0]
            if target not in {d.service for d in fields.get("depends_on") or ()}:
                fields["depends_on"] = (*(fields.get("depends_on") or ()), Dependency(target, STARTED))
        if not ok:
            return None
        if "probe" in body:
            probe = self.probe(body["probe"], path + ("probe",), fields.get("ports", ()))
            if probe is None:
                return None
            fields["probe"] = probe
        return Service(**fields)

    def build(self, raw: Any, path: KeyPath) -> Build | None:
        if isinstance(raw, str):
            raw = {"context": raw}
        body = self.mapping(raw, path, BUILD_KEYS, "build")
        if body is None:
            return None
        if "context" not in body:
            self.problem(path, "build needs a 'context' directory", "add 'context: DIR' (relative to the topology file)")
            return None
        context = self.relative_path(body["context"], path + ("context",))
        dockerfile = self.string(body.get("dockerfile", "Dockerfile"), path + ("dockerfile",))
        args = self.args(body["args"], path + ("args",)) if "args" in body else ()
        secrets = self.string_list(body["secrets"], path + ("secrets",), "secrets") if "secrets" in body else ()
        ssh = self.string_list(body["ssh"], path + ("ssh",), "ssh") if "ssh" in body else ()
        extra = self.build_options(body, path)
        if context is None or dockerfile is None or args is None or secrets is None or ssh is None or extra is None:
            return None
        if not context.is_dir():
            self.problem(path, f"build context {context} is not a directory", "fix the path (relative to the topology file)")
            return None
        if not (context / dockerfile).is_file():
            self.problem(path, f"no Dockerfile at {context / dockerfile}",
                         "add one (starting 'ARG BASE_IMAGE' / 'FROM ${BASE_IMAGE}'), or set build.dockerfile")
            return None
        return Build(context=context, dockerfile=dockerfile, args=args, secrets=secrets, ssh=ssh, **extra)

    def build_options(self, body: dict, path: KeyPath) -> dict[str, Any] | None:
        """build.target, build.labels and build.cache_from."""
        out: dict[str, Any] = {}
        if "target" in body:
            out["target"] = self.string(body["target"], path + ("target",))
        if "labels" in body:
            out["labels"] = compose_keys.pairs(self, body["labels"], path + ("labels",), "labels")
        if "cache_from" in body:
            out["cache_from"] = self.string_list(body["cache_from"], path + ("cache_from",), "cache_from")
        return None if any(v is None for v in out.values()) else out

    def environment(self, body: dict, path: KeyPath) -> tuple[tuple[str, Template], ...] | None:
        env: dict[str, Template] = {}
        if "env_file" in body:
            files = compose_keys.env_files(self, body["env_file"], path + ("env_file",))
            if files is None:
                return None
            for i, (name, required) in enumerate(files):
                file = self.host_path(name, path + ("env_file", i))
                if file is None:
                    return None
                if not required and not file.is_file():
                    continue
                try:
                    for key, value in parse_dotenv(file.read_text(encoding="utf-8"), self.interp_at(path).variables.get).items():
                        env[key] = (value,)
                except (OSError, UnicodeDecodeError) as exc:
                    self.problem(path + ("env_file", i), f"cannot read {file}: {getattr(exc, 'strerror', exc)}",
                                 "fix the path (relative to the topology file) or create the file")
                    return None
                except DotenvError as exc:
                    self.problem(path + ("env_file", i), f"{file}, {exc}", exc.fix)
                    return None
        if "environment" in body:
            epath = path + ("environment",)
            pairs = self.key_values(body["environment"], epath, "environment")
            if pairs is None:
                return None
            for key, value in pairs:
                if not isinstance(key, str) or not re.match(r"^[^=\s]+$", key):
                    self.problem(epath, f"{key!r} is not a valid variable name", "use a name without '=' or spaces")
                    return None
                if value is None:  # Compose: take the value from the host, or leave unset
                    host = self.interp_at(epath).variables.get(key)
                    if host is not None:
                        env[key] = (host,)
                    continue
                if isinstance(value, bool):
                    value = "true" if value else "false"
                template = self.string(value, epath + (key,), template=True)
                if template is None:
                    return None
                env[key] = template
        return tuple(env.items())

    def ports(self, raw: Any, path: KeyPath, service: dict) -> tuple[PortSpec, ...] | None:
        """The service's ports; `service` is the service as written (its opt-ins)."""
        if not isinstance(raw, list):
            self.problem(path, f"ports must be a list, not {_kind(raw)}", 'write ports: ["8000"] or ["8080:8000"]')
            return None
        specs: list[PortSpec] = []
        for i, item in enumerate(raw):
            mappings = self.port(item, path + (i,), service)
            if mappings is None:
                return None
            for spec in mappings:
                if any(s.container == spec.container and s.protocol == spec.protocol for s in specs):
                    self.problem(path + (i,), f"container port {spec.container} is listed twice", "list each port once")
                    return None
                specs.append(spec)
        return tuple(specs)

    def port(self, item: Any, path: KeyPath, service: dict) -> list[PortSpec] | None:
        """One short- or long-syntax entry: several specs for a range."""
        try:
            if isinstance(item, dict):
                mappings = self.long_port(item, path)
            elif isinstance(item, (int, str)) and not isinstance(item, bool):
                text = self.string(item, path)
                mappings = None if text is None else parse_short(text)
            else:
                self.problem(path, f"a port must be a string or number, not {_kind(item)}", 'write "8000" or "8080:8000"')
                return None
        except PortSyntaxError as exc:
            self.problem(path, str(exc), exc.fix)
            return None
        if mappings is None:
            return None
        specs = []
        for mapping in mappings:
            if mapping.protocol == "sctp":
                self.problem(path, "envctl does not publish sctp ports", "use tcp or udp")
                return None
            host_ip = self.host_address(mapping.host_ip, path, service)
            if host_ip is None:
                return None
            specs.append(PortSpec(mapping.container, mapping.host, mapping.protocol, host_ip))
        return specs

    def host_address(self, written: str, path: KeyPath, service: dict) -> str | None:
        """Where a port is published: 127.0.0.1 unless the file names another loopback address, or
        an address beyond loopback and the user opted in (on the service or for the invocation)."""
        if written in _LOOPBACK or not written:
            return LOOPBACK
        try:
            address = ipaddress.ip_address(written.strip("[]"))
        except ValueError:
            self.problem(path, f"{written!r} is not an IP address", "write an address such as 127.0.0.1, or none")
            return None
        if not address.is_loopback and not compose_keys.allowed(self, service, path[:2], PUBLISH_BEYOND_LOOPBACK):
            self.problem(path, f"service '{path[1]}' asks to publish a port on {written}, where other machines "
                         "can reach it; envctl publishes on 127.0.0.1 only unless you opt in",
                         f"remove '{written}:' to publish on 127.0.0.1, or opt in with "
                         f"'{compose_keys.ALLOW_KEY}: [{PUBLISH_BEYOND_LOOPBACK}]' on the service or 'envctl --allow "
                         f"{PUBLISH_BEYOND_LOOPBACK}' ({compose_keys.ALLOW_ENV}={PUBLISH_BEYOND_LOOPBACK})")
            return None
        return str(address)

    def long_port(self, item: dict, path: KeyPath) -> list[PortMapping] | None:
        body = self.mapping(item, path, LONG_PORT_KEYS, "a port")
        if body is None:
            return None
        if "target" not in body:
            self.problem(path, "a long-syntax port needs 'target'", "add 'target: CONTAINER_PORT'")
            return None
        target = self.integer(body["target"], path + ("target",))
        published = body.get("published", "")
        if isinstance(published, str):
            published = self.string(published, path + ("published",))
        texts = {k: self.string(body[k], path + (k,)) for k in ("host_ip", "protocol", "mode", "name", "app_protocol")
                 if k in body}
        if target is None or published is None or None in texts.values():
            return None
        if texts.get("mode", "ingress") not in ("ingress", "host"):
            self.problem(path + ("mode",), f"unknown port mode {texts['mode']!r}", "use ingress or host")
            return None
        for key in ("mode", "name", "app_protocol"):
            if key in texts:
                self.note(path + (key,), f"'{key}: {texts[key]}' is Compose metadata envctl does not use")
        protocol = texts.get("protocol", "tcp")
        if protocol not in PORT_PROTOCOLS:
            self.problem(path + ("protocol",), f"unknown protocol {protocol!r}", "use tcp or udp")
            return None
        return expand(str(target), str(published), protocol, texts.get("host_ip", ""))

    def depends_on(self, raw: Any, path: KeyPath) -> tuple[Dependency, ...] | None:
        if isinstance(raw, list):
            deps = []
            for i, item in enumerate(raw):
                if not isinstance(item, str):
                    self.problem(path + (i,), f"expected a service name, not {_kind(item)}", "write the service's name")
                    return None
                deps.append(Dependency(item, READY))
            return tuple(deps)
        if isinstance(raw, dict):
            deps = []
            for name, spec in raw.items():
                body = self.mapping(spec, path + (name,), ("condition", "required", "restart"), f"depends_on.{name}")
                if body is None:
                    return None
                condition = body.get("condition", READY)
                if condition not in CONDITIONS:
                    self.problem(path + (name, "condition"), f"unknown condition {condition!r}",
                                 _key_fix(str(condition), CONDITIONS, noun="condition"))
                    return None
                flags = {k: self.boolean(body[k], path + (name, k)) for k in ("required", "restart") if k in body}
                if None in flags.values():
                    return None
                deps.append(Dependency(name, condition, **flags))
            return tuple(deps)
        self.problem(path, f"depends_on must be a list or a mapping, not {_kind(raw)}", "write depends_on: [db, cache]")
        return None

    def healthcheck(self, raw: Any, path: KeyPath) -> Healthcheck | None:
        body = self.mapping(raw, path, HEALTHCHECK_KEYS, "healthcheck")
        if body is None:
            return None
        disable = self.boolean(body["disable"], path + ("disable",)) if "disable" in body else False
        if disable is None:
            return None
        if disable:
            return Healthcheck(test=("NONE",), disable=True)
        test = body.get("test")
        if isinstance(test, str):
            text = self.string(test, path + ("test",))
            tokens = ("CMD-SHELL", text) if text is not None else None
        elif isinstance(test, list) and test:
            tokens = self.string_list(test, path + ("test",), "test")
            if tokens and tokens[0] not in ("CMD", "CMD-SHELL", "NONE"):
                self.problem(path + ("test",), f"a test list must start with CMD, CMD-SHELL or NONE, not {tokens[0]!r}",
                             'write test: ["CMD", "prog", "arg"] or a shell string')
                return None
        else:
            self.problem(path + ("test",), "healthcheck needs a 'test'", 'add test: ["CMD", "prog", "arg"] or a shell string')
            return None
        values = {k: self.duration(body[k], path + (k,)) for k in ("interval", "timeout", "start_period") if k in body}
        retries = self.integer(body["retries"], path + ("retries",)) if "retries" in body else None
        if "retries" in body and retries is None:
            return None
        if retries is not None and retries < 1:
            self.problem(path + ("retries",), f"{retries!r} is not a positive number", "write a whole number, e.g. 3")
            return None
        if tokens is None or any(v is None for v in values.values()):
            return None
        return Healthcheck(test=tokens, retries=retries, **values)

    def volumes(self, raw: Any, path: KeyPath) -> tuple[Mount, ...] | None:
        if not isinstance(raw, list):
            self.problem(path, f"volumes must be a list, not {_kind(raw)}", 'write volumes: ["data:/var/lib/data"]')
            return None
        mounts = []
        for i, item in enumerate(raw):
            mount = self.mount(item, path + (i,))
            if mount is None:
                return None
            mounts.append(mount)
        return tuple(mounts)

    def mount(self, item: Any, path: KeyPath) -> Mount | None:
        if isinstance(item, dict):
            body = self.mapping(item, path, compose_keys.LONG_VOLUME_KEYS, "a volume")
            if body is None or "target" not in body:
                self.problem(path, "a long-syntax volume needs 'target'", "add 'target: /path/in/container'")
                return None
            source = self.string(body["source"], path + ("source",)) if "source" in body else None
            target = self.string(body["target"], path + ("target",))
            options = compose_keys.long_volume(self, body, path)
            kind = body.get("type", "volume" if source else "anonymous")
            if kind == "volume" and source is None:
                kind = "anonymous"
        else:
            text = self.string(item, path)
            if text is None:
                return None
            parts = text.split(":")
            if len(parts) > 3:
                self.problem(path, f"{text!r} is not a volume", 'write "NAME:/path", "./dir:/path" or "/path", with ":ro" to mount read-only')
                return None
            mode = parts[2] if len(parts) == 3 else ""
            if len(parts) == 2 and not parts[1].startswith("/") and parts[0].startswith("/"):
                self.problem(path, f"{text!r} has a mode but no target", 'write "SOURCE:/path:ro"')
                return None
            source, target = (parts[0], parts[1]) if len(parts) >= 2 else (None, parts[0])
            options = compose_keys.short_volume_modes(self, text, mode, path)
            kind = "anonymous" if source is None else (
                "bind" if source.startswith((".", "/", "~")) else "volume")
        if target is None or options is None:
            return None
        if not target.startswith("/"):
            self.problem(path, f"the target {target!r} is not an absolute path", "write the path inside the container, from '/'")
            return None
        if kind == "bind":
            resolved = self.host_path(source or "", path)
            if resolved is None:
                return None
            source = str(resolved)
        elif kind == "volume" and not VOLUME_NAME_RE.match(source or ""):
            self.problem(path, f"{source!r} is not a valid volume name", "use letters, digits, '_', '.' and '-'")
            return None
        elif kind not in ("volume", "anonymous", "tmpfs"):
            self.problem(path + ("type",), f"unknown volume type {kind!r}", "use volume, bind or tmpfs")
            return None
        return Mount(kind=kind, source=source, target=target, **options)

    def probe(self, raw: Any, path: KeyPath, ports: tuple[PortSpec, ...]) -> Probe | None:
        body = self.mapping(raw, path, PROBE_KEYS, "probe")
        if body is None:
            return None
        kinds = [k for k in ("http", "tcp", "cmd") if k in body]
        if len(kinds) != 1:
            self.problem(path, "a probe needs exactly one of http, tcp or cmd",
                         "write probe: {http: /healthz, port: 8000}, {tcp: 5432} or {cmd: [pg_isready]}")
            return None
        kind = kinds[0]
        fields: dict[str, Any] = {"kind": kind}
        for key in ("timeout", "interval"):
            if key in body:
                fields[key] = self.duration(body[key], path + (key,))
                if fields[key] is None:
                    return None
        if kind == "cmd":
            command = self.command(body["cmd"], path + ("cmd",))
            if command is None:
                return None
            return Probe(command=command, **fields)
        if kind == "tcp":
            port = self.port_number(body["tcp"], path + ("tcp",))
        else:
            probe_path = self.string(body["http"], path + ("http",))
            if probe_path is None:
                return None
            fields["path"] = probe_path if probe_path.startswith("/") else "/" + probe_path
            port = self.port_number(body["port"], path + ("port",)) if "port" in body else (
                ports[0].container if ports else None)
        if port is None:
            if kind == "http" and "port" not in body:
                self.problem(path, "an http probe needs a port and the service lists none", "add 'port: N' and list it under 'ports'")
            return None
        if not any(p.container == port and p.protocol == "tcp" for p in ports):
            self.problem(path, f"the probe checks port {port}, which the service does not publish",
                         f'add "{port}" to the service\'s ports (probes run from the host)')
            return None
        return Probe(port=port, **fields)

    def mock(self, name: str, raw: Any, path: KeyPath) -> Mock | None:
        body = self.mapping(raw, path, MOCK_KEYS, f"mock '{name}'")
        if body is None:
            return None
        if "cassettes" not in body:
            self.problem(path, f"mock '{name}' needs 'cassettes'", "add 'cassettes: DIR' (a directory of vcrpy cassettes, or one file)")
            return None
        cassettes = self.relative_path(body["cassettes"], path + ("cassettes",))
        if cassettes is None:
            return None
        fields: dict[str, Any] = {"name": name, "cassettes": cassettes, "line": self.source.line(path)}
        if "upstream" in body:
            upstream = self.string(body["upstream"], path + ("upstream",))
            if upstream is not None and not re.match(r"^https?://", upstream):
                self.problem(path + ("upstream",), f"{upstream!r} is not an http(s) URL", "write https://api.example.com")
                return None
            fields["upstream"] = upstream
        if "match_on" in body:
            match_on = self.string_list(body["match_on"], path + ("match_on",), "match_on")
            for i, matcher in enumerate(match_on or ()):
                if matcher not in VCR_MATCHERS:
                    self.problem(path + ("match_on", i), f"unknown vcrpy matcher {matcher!r}",
                                 _key_fix(matcher, VCR_MATCHERS, noun="matcher"))
                    return None
            fields["match_on"] = match_on
        for key in ("allow_repeats", "strict", "replay_latency"):
            if key in body:
                fields[key] = self.boolean(body[key], path + (key,))
        if "base" in body:
            fields["base"] = self.string(body["base"], path + ("base",))
        if "scrub" in body:
            scrub = self.mapping(body["scrub"], path + ("scrub",), SCRUB_KEYS, "scrub")
            if scrub is None:
                return None
            lists = {k: self.string_list(v, path + ("scrub", k), k) for k, v in scrub.items()}
            if any(v is None for v in lists.values()):
                return None
            fields["scrub"] = Scrub(**lists)
        if "volatile" in body:
            fields["volatile"] = self.mock_volatile(body["volatile"], path + ("volatile",))
        if "fault" in body:
            fault = self.mapping(body["fault"], path + ("fault",), FAULT_KEYS, "fault")
            if fault is None:
                return None
            latency, rate = fault.get("latency_ms", 0), fault.get("error_rate", 0.0)
            if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
                self.problem(path + ("fault", "latency_ms"), f"{latency!r} is not a number of milliseconds", "write e.g. 50")
                return None
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                self.problem(path + ("fault", "error_rate"), f"{rate!r} is not a share from 0 to 1", "write e.g. 0.05")
                return None
            seed = fault.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                self.problem(path + ("fault", "seed"), f"{seed!r} is not a whole number", "write e.g. 7")
                return None
            fields["fault"] = Fault(latency_ms=latency, error_rate=float(rate), seed=seed)
        if "scenarios" in body:
            fields["scenarios"] = self.fault_scenarios(body["scenarios"], path + ("scenarios",))
        if any(v is None for v in fields.values()):
            return None
        if not cassettes.exists():
            self.problem(path + ("cassettes",), f"no cassette directory or file at {cassettes}",
                         "create the directory (it may be empty when recording) or fix the path")
            return None
        return Mock(**fields)

    def fault_scenarios(self, raw: Any, path: KeyPath) -> tuple | None:
        if not isinstance(raw, Mapping):
            self.problem(path, "scenarios must be a mapping of names to lists of fault rules",
                         "write e.g. provider-down: [{kind: status, status: 503, times: 3}]")
            return None
        scenarios = []
        for name, steps in raw.items():
            if not isinstance(steps, list) or not steps:
                self.problem(path + (name,), f"scenario '{name}' must be a non-empty list of fault rules",
                             "write e.g. [{kind: reset, path: /v1/charges, times: 1}]")
                return None
            parsed = [self.fault_step(step, path + (name, i)) for i, step in enumerate(steps)]
            if any(p is None for p in parsed):
                return None
            scenarios.append((str(name), tuple(parsed)))
        return tuple(scenarios)

    def fault_step(self, raw: Any, path: KeyPath) -> FaultStep | None:
        body = self.mapping(raw, path, FAULT_STEP_KEYS, "fault rule")
        if body is None:
            return None
        kind = body.get("kind", "status")
        if kind not in FAULT_KINDS:
            self.problem(path + ("kind",), f"{kind!r} is not a fault kind", _key_fix(str(kind), FAULT_KINDS, noun="kind"))
            return None
        whole = {k: body[k] for k in ("status", "delay_ms", "times", "seed") if body.get(k) is not None}
        for key, value in whole.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.problem(path + (key,), f"{value!r} is not a whole number", "write e.g. 3")
                return None
        probability = body.get("probability", 1.0)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            self.problem(path + ("probability",), f"{probability!r} is not a share from 0 to 1", "write e.g. 0.5")
            return None
        return FaultStep(kind=kind, method=body.get("method"), path=body.get("path"), status=whole.get("status", 503),
                         delay_ms=whole.get("delay_ms", 0), times=body.get("times", 1),
                         probability=float(probability), seed=whole.get("seed"))

    def mock_volatile(self, raw: Any, path: KeyPath) -> Volatile | None:
        body = self.mapping(raw, path, VOLATILE_KEYS, "volatile")
        if body is None:
            return None
        lists = {k: self.string_list(v, path + (k,), k) for k, v in body.items() if k != "recorded_as"}
        if any(v is None for v in lists.values()):
            return None
        for i, json_path in enumerate(lists.get("json", ())):
            try:
                parse_json_path(json_path)
            except ValueError as exc:
                self.problem(path + ("json", i), str(exc), "write a path such as $.idempotency_key or $.items[*].sent_at")
                return None
        recorded_as = body.get("recorded_as", "kept")
        if recorded_as not in VOLATILE_RECORDED_AS:
            self.problem(path + ("recorded_as",), f"{recorded_as!r} is not one of {', '.join(VOLATILE_RECORDED_AS)}",
                         "write 'kept' (the value as sent) or 'placeholder' (written as <volatile>)")
            return None
        return Volatile(json_paths=tuple(lists.get("json", ())), headers=tuple(lists.get("headers", ())),
                        query=tuple(lists.get("query", ())), form=tuple(lists.get("form", ())), recorded_as=recorded_as)

    # -- what names what -----------------------------------------------------------------

    def check_cross_references(self, topology: Topology) -> None:
        from envctl.graph import find_cycle  # graph imports the model only

        services, mocks, bases = topology.services, topology.mocks, topology.bases
        targets = sorted(set(services) | set(mocks))
        for name in set(services) & set(mocks):
            self.problem(("mocks", name), f"'{name}' is both a service and a mock", "rename one of them")
        for name, base in bases.items():
            if base.parent is not None and base.parent not in bases:
                self.problem(("bases", name, "from"), f"unknown base '{base.parent}'", _key_fix(base.parent, tuple(bases), noun="base"))
        cycle = find_cycle({n: [b.parent] if b.parent in bases else [] for n, b in bases.items()})
        if cycle:
            self.problem(("bases", cycle[0], "from"), "bases build on each other in a cycle: " + " -> ".join(cycle),
                         "make one of them start from a bootstrap or an image")
        for name, service in services.items():
            path: KeyPath = ("services", name)
            if service.base is not None and service.base not in bases:
                self.problem(path + ("base",), f"unknown base '{service.base}'", _key_fix(service.base, tuple(bases), noun="base"))
            for i, dep in enumerate(service.depends_on):
                dep_path = path + ("depends_on", i) if (path + ("depends_on", i)) in self.source.lines else path + ("depends_on", dep.service)
                if dep.service == name:
                    self.problem(dep_path, f"service '{name}' depends on itself", "remove it from its own depends_on")
                elif dep.service not in self.declared and dep.required:
                    self.problem(dep_path, f"unknown service '{dep.service}'", _key_fix(dep.service, tuple(targets), noun="service"))
            for key, template in service.environment:
                for ref in references(template):
                    self.check_reference(ref, topology, path + ("environment", key))
        for name, service in services.items():
            build = service.build
            for i, secret in enumerate(build.secrets if build else ()):
                if secret not in topology.secrets:
                    self.problem(("services", name, "build", "secrets", i), f"unknown secret '{secret}'",
                                 _key_fix(secret, tuple(topology.secrets), noun="secret")
                                 if topology.secrets else "declare it under a top-level 'secrets:' with 'file' or 'environment'")
        for name, mock in mocks.items():
            if mock.base is not None and mock.base not in bases:
                self.problem(("mocks", name, "base"), f"unknown base '{mock.base}'", _key_fix(mock.base, tuple(bases), noun="base"))
            elif mock.base is None and len(bases) != 1:
                self.problem(("mocks", name), f"mock '{name}' needs a base to build on ({len(bases)} bases are defined)",
                             "add 'base: NAME' naming a Debian-based base (the mock image adds vcrpy to it)"
                             if bases else "add a base, e.g. bases: {os: {bootstrap: {distro: debian, suite: bookworm, "
                             "packages: [python3]}}}")
        compose_keys.check_references(self, topology, lambda key, known, noun: _key_fix(key, known, noun=noun))
        cycle = find_cycle({n: [d.service for d in s.depends_on if d.service in services and d.service != n]
                            for n, s in services.items()})
        if cycle:
            self.problem(("services", cycle[0], "depends_on"), "services depend on each other in a cycle: " + " -> ".join(cycle),
                         "remove one of these dependencies")
        seen: dict[int, str] = {}
        for name, service in services.items():
            for i, port in enumerate(service.ports):
                if port.host is None:
                    continue
                if port.host in seen:
                    self.problem(("services", name, "ports", i),
                                 f"host port {port.host} is also published by service '{seen[port.host]}'",
                                 "give one of them another host port, or publish it without one (\"8000\")")
                seen[port.host] = name

    def check_reference(self, ref: Reference, topology: Topology, path: KeyPath) -> None:
        if ref.target in self.declared and ref.target not in topology.services and ref.target not in topology.mocks:
            return  # it has problems of its own, reported where it is defined
        if ref.target not in topology.services and ref.target not in topology.mocks:
            known = tuple(sorted(set(topology.services) | set(topology.mocks)))
            self.problem(path, f"{ref} names '{ref.target}', which is neither a service nor a mock",
                         _key_fix(ref.target, known, noun="service"))
            return
        ports = topology.ports_of(ref.target)
        if ref.attr == "host":
            return
        if not ports:
            self.problem(path, f"{ref} needs a port, and '{ref.target}' publishes none", f"add ports to '{ref.target}' or use ${{{ref.target}.host}}")
        elif ref.port is not None and not any(p.container == ref.port for p in ports):
            listed = ", ".join(str(p.container) for p in ports)
            self.problem(path, f"'{ref.target}' has no port {ref.port} (it has {listed})",
                         f"use one of its ports, or add \"{ref.port}\" to its ports")


_FAILED = object()  # a typed field whose interpolation failed (the problem is recorded)
# How Compose casts an interpolated string in a boolean field.
_BOOLEAN_WORDS = {"y": True, "yes": True, "true": True, "on": True,
                  "n": False, "no": False, "false": False, "off": False}


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _key_fix(key: str, allowed: tuple[str, ...], noun: str = "key") -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not allowed:
        return f"there is no {noun} of that name; define it first"
    return f"use one of the known {noun}s: " + ", ".join(allowed)
