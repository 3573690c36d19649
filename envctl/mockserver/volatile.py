"""Volatile fields: the parts of a request that change on every run (an idempotency key, a timestamp).

One set of rules per mock, used alike by matching (the fields are left out of the comparison),
recording (kept as sent, or replaced by a placeholder) and diagnostics (named as ignored).
JSON paths are a small subset of JSONPath: `$.a.b`, `$.items[0].id`, `$.items[*].id`.
Runs inside the mock container (standard library and vcrpy only).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from vcr import filters
from vcr.request import Request

from .jsonpath import parse_json_path

PLACEHOLDER = "<volatile>"


def _replace_at(value, steps: tuple, replacement) -> bool:
    """Replace (or, when `replacement` is `_REMOVE`, delete) what `steps` names; whether anything was."""
    if not steps:
        return False
    step, rest = steps[0], steps[1:]
    if isinstance(value, dict) and isinstance(step, str) and step != "*":
        keys = [step] if step in value else []
    elif isinstance(value, list) and (step == "*" or isinstance(step, int)):
        keys = range(len(value)) if step == "*" else ([step] if step < len(value) else [])
    elif isinstance(value, dict) and step == "*":
        keys = list(value)
    else:
        return False
    changed = False
    for key in list(keys):
        if rest:
            changed |= _replace_at(value[key], rest, replacement)
        elif replacement is _REMOVE:
            value[key] = _REMOVE  # removed below, so list indexes stay valid while walking
            changed = True
        else:
            value[key] = replacement
            changed = True
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is _REMOVE]:
            del value[key]
    else:
        value[:] = [v for v in value if v is not _REMOVE]
    return changed


_REMOVE = object()


@dataclass(frozen=True)
class VolatileFields:
    json_paths: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    form: tuple[str, ...] = ()
    recorded_as: str = "kept"  # or "placeholder"
    _steps: tuple = field(default=(), compare=False, repr=False)

    @classmethod
    def from_config(cls, config: dict | None) -> VolatileFields:
        config = config or {}
        paths = tuple(config.get("json", ()))
        return cls(json_paths=paths, headers=tuple(config.get("headers", ())), query=tuple(config.get("query", ())),
                   form=tuple(config.get("form", ())), recorded_as=config.get("recorded_as", "kept"),
                   _steps=tuple(parse_json_path(p) for p in paths))

    def __bool__(self) -> bool:
        return bool(self.json_paths or self.headers or self.query or self.form)

    def names(self) -> list[str]:
        """Every rule as people write it, for diagnostics."""
        return [*self.json_paths, *(f"header {h}" for h in self.headers), *(f"query {q}" for q in self.query),
                *(f"form {f}" for f in self.form)]

    def for_matching(self, request: Request) -> Request:
        """The request without its volatile fields: what matching compares."""
        return self._apply(request, _REMOVE) if self else request

    def for_recording(self, request: Request) -> Request:
        """The request as it is written: volatile fields kept, or replaced by a placeholder."""
        if not self or self.recorded_as != "placeholder":
            return request
        return self._apply(request, PLACEHOLDER)

    def _apply(self, request: Request, replacement) -> Request:
        request = copy.deepcopy(request)
        if replacement is _REMOVE:
            request = filters.remove_headers(request, list(self.headers))
            request = filters.remove_query_parameters(request, list(self.query))
        else:
            request = filters.replace_headers(request, [(h, replacement) for h in self.headers if h in request.headers])
            present = {name for name, _ in request.query}
            request = filters.replace_query_parameters(request, [(q, replacement) for q in self.query if q in present])
        if self.form and request.body:
            form_replacement = None if replacement is _REMOVE else replacement
            try:
                request = filters.replace_body_parameters(request, [(f, form_replacement) for f in self.form])
            except ValueError:
                pass  # a body that says it is JSON and is not: nothing to leave out
        if self._steps and request.body:
            request.body = self._json_body(request.body, replacement)
        return request

    def _json_body(self, body: bytes, replacement) -> bytes:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return body
        changed = False
        for steps in self._steps:
            changed |= _replace_at(data, steps, replacement)
        return json.dumps(data).encode() if changed else body
