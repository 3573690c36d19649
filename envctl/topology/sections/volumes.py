"""A service's `volumes:` (its mounts), short and long syntax.

The top-level `volumes:` (named volumes and their options) is `compose_keys.volume`'s.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

from envctl.topology import compose_keys
from envctl.topology.model import Mount
from envctl.topology.readers import Reader, kind_of
from envctl.topology.source import KeyPath

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# One field of SOURCE:TARGET:MODE; a Windows drive (C:\ or C:/) belongs to its path, as in Compose.
SHORT_FIELD_RE = re.compile(r"[A-Za-z]:[\\/][^:]*|[^:]*")
WINDOWS_PATH_RE = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")  # C:\dir, C:/dir or \\server\share


def volumes(reader: Reader, raw: Any, path: KeyPath) -> tuple[Mount, ...] | None:
    if not isinstance(raw, list):
        reader.problem(path, f"volumes must be a list, not {kind_of(raw)}", 'write volumes: ["data:/var/lib/data"]')
        return None
    mounts = []
    for i, item in enumerate(raw):
        found = mount(reader, item, path + (i,))
        if found is None:
            return None
        mounts.append(found)
    return tuple(mounts)


def mount(reader: Reader, item: Any, path: KeyPath) -> Mount | None:
    written = _long_syntax(reader, item, path) if isinstance(item, dict) else _short_syntax(reader, item, path)
    if written is None:
        return None
    kind, source, target, options = written
    if target is None or options is None:
        return None
    if not target.startswith("/"):
        reader.problem(path, f"the target {target!r} is not an absolute path", "write the path inside the container, from '/'")
        return None
    if kind == "bind":
        resolved = _bind_source(reader, source or "", path)
        if resolved is None:
            return None
        source = resolved
    elif kind == "volume" and not VOLUME_NAME_RE.match(source or ""):
        reader.problem(path, f"{source!r} is not a valid volume name", "use letters, digits, '_', '.' and '-'")
        return None
    elif kind not in ("volume", "anonymous", "tmpfs"):
        reader.problem(path + ("type",), f"unknown volume type {kind!r}", "use volume, bind or tmpfs")
        return None
    return Mount(kind=kind, source=source, target=target, **options)


def _bind_source(reader: Reader, source: str, path: KeyPath) -> str | None:
    """A bind mount's source as an absolute host path; a Windows path only where envctl runs on Windows."""
    if WINDOWS_PATH_RE.match(source):
        if os.name == "nt":
            return source
        reader.problem(path, f"{source!r} is a Windows path, and envctl runs on {sys.platform} here",
                       "write a path of this host (under WSL, C:\\work is /mnt/c/work)")
        return None
    resolved = reader.host_path(source, path)
    return None if resolved is None else str(resolved)


def _long_syntax(reader: Reader, item: dict, path: KeyPath) -> tuple[Any, str | None, Any, dict | None] | None:
    """kind, source, target and Mount options of `{type: ..., source: ..., target: ...}`."""
    body = reader.mapping(item, path, compose_keys.LONG_VOLUME_KEYS, "a volume")
    if body is None or "target" not in body:
        reader.problem(path, "a long-syntax volume needs 'target'", "add 'target: /path/in/container'")
        return None
    source = reader.string(body["source"], path + ("source",)) if "source" in body else None
    target = reader.string(body["target"], path + ("target",))
    options = compose_keys.long_volume(reader, body, path)
    kind = body.get("type", "volume" if source else "anonymous")
    if kind == "volume" and source is None:
        kind = "anonymous"
    return kind, source, target, options


def _short_syntax(reader: Reader, item: Any, path: KeyPath) -> tuple[str, str | None, str, dict | None] | None:
    """kind, source, target and Mount options of `SOURCE:TARGET[:MODE]` or `TARGET`."""
    text = reader.string(item, path)
    if text is None:
        return None
    parts = split_short_syntax(text)
    if len(parts) > 3:
        reader.problem(path, f"{text!r} is not a volume", 'write "NAME:/path", "./dir:/path" or "/path", with ":ro" to mount read-only')
        return None
    mode = parts[2] if len(parts) == 3 else ""
    if len(parts) == 2 and not parts[1].startswith("/") and parts[0].startswith("/"):
        reader.problem(path, f"{text!r} has a mode but no target", 'write "SOURCE:/path:ro"')
        return None
    source, target = (parts[0], parts[1]) if len(parts) >= 2 else (None, parts[0])
    options = compose_keys.short_volume_modes(reader, text, mode, path)
    kind = "anonymous" if source is None else (
        "bind" if source.startswith((".", "/", "~")) or WINDOWS_PATH_RE.match(source) else "volume")
    return kind, source, target, options


def split_short_syntax(text: str) -> list[str]:
    """`SOURCE:TARGET:MODE` split at its colons, except the one of a Windows drive letter."""
    parts: list[str] = []
    position = 0
    while True:
        field = SHORT_FIELD_RE.match(text, position)
        assert field is not None  # the second alternative matches anywhere, if only the empty string
        parts.append(field.group())
        if field.end() >= len(text):
            return parts
        position = field.end() + 1  # past the colon
