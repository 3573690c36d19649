"""Loading `envctl.yaml`: parse, interpolate host variables, validate, build the model.

Every problem is collected with its file, line and key path, so one run of `envctl config`
shows all of them at once. Nothing here touches Docker. This module orchestrates: the typed
readers are `readers.py`, each section's parser is in `sections/` (a service's keys in
`sections/services.py`, mocks in `sections/mocks.py`, ...), the Compose runtime keys are
`compose_keys.py`, and what names what is checked by `crossref.py` once every section is read.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from envctl.errors import Problem, TopologyError
from envctl.topology import compose_keys
from envctl.topology.crossref import check_cross_references
from envctl.topology.dotenv import DotenvError, parse_dotenv
from envctl.topology.files import COMPOSE_FILES, DEFAULT_FILE, Document, discover, read_documents
from envctl.topology.interpolation import Interpolator
from envctl.topology.model import Topology
from envctl.topology.readers import Reader, kind_of
from envctl.topology.sections.bases import base
from envctl.topology.sections.mocks import mock
from envctl.topology.sections.project import project_name, registries, secret
from envctl.topology.sections.services import service
from envctl.topology.source import KeyPath

TOP_KEYS = ("name", "bases", "services", "mocks", "volumes", "secrets", "version", "registry", "cache",
            "networks", "configs", "backend")


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
    """Turns the raw document into the model: each section in turn, then what names what."""

    def __init__(self, source: Document, interpolator: Interpolator) -> None:
        self.reader = Reader(source, interpolator)
        self.source = source
        self.declared: set[str] = set()  # every service and mock name, parsed or not
        self.refusals = compose_keys.Refusals()
        self.volume_options: dict[str, compose_keys.Volume] = {}

    def topology(self) -> Topology | None:
        """The model (None when the document is not even a mapping); problems go on the source."""
        reader = self.reader
        top = reader.mapping(self.source.data, (), TOP_KEYS, "the topology")
        if top is None:
            return None
        name = project_name(reader, top)
        if not top.get("services") and not top.get("mocks"):
            reader.problem(("services",), "the topology has no services", "add a 'services:' section")
        if "version" in top:
            reader.note(("version",), "ignored, as Compose v2 ignores it")
        bases = self.section(top, "bases", base)
        services = self.section(top, "services", lambda r, n, v, p: service(r, self.refusals, n, v, p))
        mocks = self.section(top, "mocks", mock)
        volumes = self.section(top, "volumes", self.volume)
        secrets = self.section(top, "secrets", secret)
        networks = self.section(top, "networks", compose_keys.network)
        configs = self.section(top, "configs", compose_keys.config)
        ignored = self.refusals.report(reader)
        topology = Topology(
            name=name, file=self.source.file, bases=bases, services=services, mocks=mocks,
            volumes=tuple(volumes), secrets=secrets, notes=tuple(reader.notes), **registries(reader, top),
            files=self.source.files, networks=networks, configs=configs,
            volume_options={n: v for n, v in self.volume_options.items() if v != compose_keys.Volume(n)},
            warnings=tuple(f"variable {v} is not set; using an empty string"
                           for v in sorted(reader.interp.unset or ())) + tuple(ignored),
        )
        check_cross_references(reader, topology, self.declared)
        return topology

    def section(self, top: dict, what: str, parse: Callable[[Reader, str, Any, KeyPath], Any]) -> dict:
        """A top-level mapping of names to entries (`services:`...), each read by `parse`."""
        value, path = top.get(what), (what,)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.reader.problem(path, f"'{what}' must be a mapping of names, not {kind_of(value)}",
                                f"write '{what}:' as 'name: ...' entries")
            return {}
        out = {}
        for name, body in value.items():
            if name.startswith("x-"):
                continue
            if not self.reader.name_of(name, path + (name,), what.rstrip("s")):
                continue
            if what in ("services", "mocks"):
                self.declared.add(name)
            item = parse(self.reader, name, body, path + (name,))
            if item is not None:
                out[name] = item
        return out

    def volume(self, reader: Reader, name: str, raw: Any, path: KeyPath) -> str | None:
        """A top-level volume: its name, and its options (driver, external, ...) when it has any."""
        options = compose_keys.volume(reader, name, raw, path)
        if options is not None:
            self.volume_options[name] = options
        return name
