"""A service's `volumes:` (its mounts), short and long syntax.

The top-level `volumes:` (named volumes and their options) is `compose_keys.volume`'s.
"""
from __future__ import annotations

import re
from typing import Any

from envctl.topology import compose_keys
from envctl.topology.model import Mount
from envctl.topology.readers import Reader, kind_of
from envctl.topology.source import KeyPath

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


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
        resolved = reader.host_path(source or "", path)
        if resolved is None:
            return None
        source = str(resolved)
    elif kind == "volume" and not VOLUME_NAME_RE.match(source or ""):
        reader.problem(path, f"{source!r} is not a valid volume name", "use letters, digits, '_', '.' and '-'")
        return None
    elif kind not in ("volume", "anonymous", "tmpfs"):
        reader.problem(path + ("type",), f"unknown volume type {kind!r}", "use volume, bind or tmpfs")
        return None
    return Mount(kind=kind, source=source, target=target, **options)


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
    parts = text.split(":")
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
        "bind" if source.startswith((".", "/", "~")) else "volume")
    return kind, source, target, options
