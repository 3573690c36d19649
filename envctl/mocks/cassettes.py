"""Checking cassettes on the host, with vcrpy's own loader, before anything starts."""
from __future__ import annotations

from pathlib import Path

from envctl.errors import Problem, TopologyError
from envctl.topology import Mock, Topology

SUFFIXES = (".yaml", ".yml", ".json")


def cassette_files(mock: Mock) -> list[Path]:
    if mock.cassettes.is_dir():
        return sorted(p for p in mock.cassettes.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    return [mock.cassettes]


def check_cassettes(topology: Topology, names: list[str], recording: set[str]) -> None:
    """Raise `TopologyError` naming every cassette that vcrpy cannot load."""
    problems = []
    for name in names:
        mock = topology.mocks[name]
        if not mock.cassettes.exists():
            problems.append(Problem(topology.file, mock.line, f"mocks.{name}.cassettes",
                                    f"no cassette directory or file at {mock.cassettes}", "create it or fix the path"))
            continue
        if name in recording and mock.upstream is None:
            problems.append(Problem(topology.file, mock.line, f"mocks.{name}",
                                    f"mock '{name}' cannot record: it has no 'upstream'",
                                    "add 'upstream: https://api.example.com' (the real API)"))
            continue
        for path in cassette_files(mock):
            problem = _load_problem(path)
            if problem:
                problems.append(Problem(path, None, "", f"cassette of mock '{name}' does not load: {problem}",
                                        "fix the file (vcrpy's format, version 1), re-record it, or remove it "
                                        "(recording appends to the cassettes, so they must load)"))
    if problems:
        raise TopologyError(problems)


def _load_problem(path: Path) -> str | None:
    # vcrpy is imported here, when there are cassettes to check: it costs every command ~50 ms.
    from vcr.serialize import deserialize
    from vcr.serializers import jsonserializer, yamlserializer

    serializer = jsonserializer if path.suffix == ".json" else yamlserializer
    try:
        requests, responses = deserialize(path.read_text(encoding="utf-8"), serializer)
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except Exception as exc:  # vcrpy raises YAML, JSON, key and decode errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{type(exc).__name__}: {first}"
    if len(requests) != len(responses):
        return "it has a different number of requests and responses"
    return None
