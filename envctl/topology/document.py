"""The loaded topology written back as a plain document (what `envctl config` prints)."""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from envctl.topology.interpolation import Reference, Template
from envctl.topology.model import Topology


def to_document(topology: Topology) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": topology.name}
    if topology.bases:
        doc["bases"] = {n: _plain(b, skip={"name"}) for n, b in topology.bases.items()}
    doc["services"] = {n: _plain(s, skip={"name", "line"}) for n, s in topology.services.items()}
    if topology.mocks:
        doc["mocks"] = {n: _plain(m, skip={"name", "line"}) for n, m in topology.mocks.items()}
    return doc


def template_text(template: Template) -> str:
    return "".join(part if isinstance(part, str) else str(part) for part in template)


def _plain(value: Any, skip: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    if is_dataclass(value):
        out = {}
        for f in fields(value):
            if f.name in skip:
                continue
            item = getattr(value, f.name)
            if item in (None, (), {}) or (f.name == "init" and item is True):
                continue
            out[f.name] = _environment(item) if f.name == "environment" else _plain(item)
        return out
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple) and value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return {k: _plain(v) for k, v in value}  # args and other pairs
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Reference):
        return str(value)
    return value


def _environment(pairs: tuple[tuple[str, Template], ...]) -> dict[str, str]:
    return {key: template_text(template) for key, template in pairs}
