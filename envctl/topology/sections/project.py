"""The project-wide keys: `name`, `registry`, `cache` and `secrets`."""
from __future__ import annotations

import re
from typing import Any

from envctl.topology.imageref import registry_location_problem
from envctl.topology.model import Secret
from envctl.topology.readers import Reader
from envctl.topology.source import KeyPath

SECRET_KEYS = ("file", "environment")


def project_name(reader: Reader, top: dict) -> str:
    """`name:`, interpolated as Compose does; without one, the topology directory's name."""
    name = top.get("name")
    if isinstance(name, str):  # Compose interpolates the project name too
        name = reader.string(name, ("name",)) or None  # failed (reported) or empty: the directory's
    if name is None:
        return re.sub(r"[^a-z0-9_-]", "-", reader.source.file.parent.name.lower()).strip("-_") or "envctl"
    return name if reader.name_of(name, ("name",), "project") else "invalid"


def secret(reader: Reader, name: str, raw: Any, path: KeyPath) -> Secret | None:
    body = reader.mapping(raw, path, SECRET_KEYS, f"secret '{name}'")
    if body is None:
        return None
    if len(body) != 1:
        reader.problem(path, f"secret '{name}' needs exactly one of 'file' or 'environment'",
                       "write 'file: ./path/to/secret' or 'environment: HOST_VARIABLE'")
        return None
    if "file" in body:
        file = reader.relative_path(body["file"], path + ("file",))
        if file is None:
            return None
        value = file.read_text(errors="replace").strip() if file.is_file() else None
        return Secret(name, file=file, value=value)
    variable = reader.string(body["environment"], path + ("environment",))
    if variable is None:
        return None
    return Secret(name, environment=variable, value=reader.interp_at(path).variables.get(variable))


BACKENDS = ("engine", "swarm")


def registries(reader: Reader, top: dict) -> dict[str, str]:
    """`registry:` (where `envctl push` pushes), `cache:` (the shared image cache) and `backend:`."""
    out = {}
    if "backend" in top:
        text = reader.string(top["backend"], ("backend",))
        if text is not None and text not in BACKENDS:
            reader.problem(("backend",), f"unknown backend {text!r}", "write 'engine' (the local Docker engine) "
                           "or 'swarm' (the Docker Swarm cluster DOCKER_HOST manages)")
        elif text is not None:
            out["backend"] = text
    for key in ("registry", "cache"):
        if key in top:
            text = reader.string(top[key], (key,))
            if text is not None and registry_location_problem(text):
                reader.problem((key,), registry_location_problem(text), "write HOST[:PORT]/PREFIX, "
                               "e.g. 'registry.example.com:5000/team'")
            elif text is not None:
                out[key] = text
    return out
