"""A service's `environment:` and `env_file:`: its variables, each a template (references resolve later)."""
from __future__ import annotations

import re
from typing import Any

from envctl.topology import compose_keys
from envctl.topology.dotenv import DotenvError, parse_dotenv
from envctl.topology.interpolation import Template
from envctl.topology.readers import Reader
from envctl.topology.source import KeyPath


def environment(reader: Reader, body: dict, path: KeyPath) -> tuple[tuple[str, Template], ...] | None:
    """The service's variables: its env files' first, then `environment:` over them."""
    env: dict[str, Template] = {}
    if "env_file" in body and not _env_files(reader, body["env_file"], path, env):
        return None
    if "environment" in body and not _variables(reader, body["environment"], path + ("environment",), env):
        return None
    return tuple(env.items())


def _env_files(reader: Reader, raw: Any, path: KeyPath, env: dict[str, Template]) -> bool:
    """Add the variables of the service's env files (at `path`) to `env`; False if one is wrong."""
    files = compose_keys.env_files(reader, raw, path + ("env_file",))
    if files is None:
        return False
    for i, (name, required) in enumerate(files):
        file = reader.host_path(name, path + ("env_file", i))
        if file is None:
            return False
        if not required and not file.is_file():
            continue
        try:
            for key, value in parse_dotenv(file.read_text(encoding="utf-8"), reader.interp_at(path).variables.get).items():
                env[key] = (value,)
        except (OSError, UnicodeDecodeError) as exc:
            reader.problem(path + ("env_file", i), f"cannot read {file}: {getattr(exc, 'strerror', exc)}",
                           "fix the path (relative to the topology file) or create the file")
            return False
        except DotenvError as exc:
            reader.problem(path + ("env_file", i), f"{file}, {exc}", exc.fix)
            return False
    return True


def _variables(reader: Reader, raw: Any, epath: KeyPath, env: dict[str, Template]) -> bool:
    """Add `environment:` (at `epath`) to `env`; False if an entry is wrong."""
    pairs = reader.key_values(raw, epath, "environment")
    if pairs is None:
        return False
    for key, value in pairs:
        if not isinstance(key, str) or not re.match(r"^[^=\s]+$", key):
            reader.problem(epath, f"{key!r} is not a valid variable name", "use a name without '=' or spaces")
            return False
        if value is None:  # Compose: take the value from the host, or leave unset
            host = reader.interp_at(epath).variables.get(key)
            if host is not None:
                env[key] = (host,)
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        template = reader.string(value, epath + (key,), template=True)
        if template is None:
            return False
        env[key] = template
    return True
