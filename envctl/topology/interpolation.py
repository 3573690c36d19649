"""The `${...}` grammar: host variables with Compose's rules, and address references.

``${VAR}``, ``$VAR``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``${VAR?message}``, ``${VAR:+alternative}``, ``${VAR+alternative}`` and ``$$`` behave as in
Docker Compose. A braced name with a dot (``${db.host}``, ``${api.port.8000}``,
``${payments.url}``) is a reference to another service or mock; it is kept as a
`Reference` and resolved later, per consumer, by `envctl.wiring`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"[_a-zA-Z][_a-zA-Z0-9]*"
_BRACED = re.compile(rf"^(?P<name>{_NAME})(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)
_REFERENCE = re.compile(r"^(?P<target>[a-z0-9][a-z0-9_-]*)\.(?P<attr>host|port|url)(?:\.(?P<port>\d+))?$")
_UNBRACED = re.compile(_NAME)

REFERENCE_FORMS = "${NAME.host}, ${NAME.port}, ${NAME.port.N}, ${NAME.url} or ${NAME.url.N}"


@dataclass(frozen=True)
class Reference:
    """``${target.attr}`` or ``${target.attr.port}``: an address of another service or mock."""

    target: str
    attr: str  # "host", "port" or "url"
    port: int | None = None

    def __str__(self) -> str:
        suffix = f".{self.port}" if self.port is not None else ""
        return f"${{{self.target}.{self.attr}{suffix}}}"


# A string with its references still unresolved: literal text and Reference parts.
Template = tuple[str | Reference, ...]


class InterpolationError(ValueError):
    """A `${...}` expression is malformed or a required variable is missing."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass
class Interpolator:
    """Resolves host variables; collects the names that were unset (Compose warns on them)."""

    variables: Mapping[str, str]
    unset: set[str] | None = None

    def template(self, text: str) -> Template:
        """Interpolate host variables in `text`, keeping references as `Reference` parts."""
        parts: list[str | Reference] = []
        i, n = 0, len(text)
        while i < n:
            dollar = text.find("$", i)
            if dollar < 0 or dollar + 1 >= n:
                parts.append(text[i:])
                break
            parts.append(text[i:dollar])
            nxt = text[dollar + 1]
            if nxt == "$":
                parts.append("$")
                i = dollar + 2
            elif nxt == "{":
                end = _closing_brace(text, dollar + 2)
                if end < 0:
                    raise InterpolationError(
                        f"unterminated '${{' in {text!r}",
                        "close it with '}', or write '$$' for a literal '$'",
                    )
                parts.extend(self._braced(text[dollar + 2 : end], text))
                i = end + 1
            else:
                match = _UNBRACED.match(text, dollar + 1)
                if match:  # Compose: a bare '$' not followed by a name stays as it is
                    parts.append(self._lookup(match.group(0)) or "")
                    i = match.end()
                else:
                    parts.append("$")
                    i = dollar + 1
        return _joined(parts)

    def plain(self, text: str) -> str:
        """Interpolate a value where references are not allowed."""
        parts = self.template(text)
        for part in parts:
            if isinstance(part, Reference):
                raise InterpolationError(
                    f"the reference {part} is only allowed in 'environment' values",
                    "pass addresses to the service through its environment",
                )
        return "".join(parts)  # type: ignore[arg-type]

    def _lookup(self, name: str) -> str | None:
        value = self.variables.get(name)
        if value is None and self.unset is not None:
            self.unset.add(name)
        return value

    def _braced(self, body: str, whole: str) -> Template:
        ref = _REFERENCE.match(body)
        if ref:
            port = ref.group("port")
            return (Reference(ref.group("target"), ref.group("attr"), int(port) if port else None),)
        match = _BRACED.match(body)
        if not match and "." in body:
            raise InterpolationError(
                f"'${{{body}}}' in {whole!r} is not a valid reference",
                f"write one of {REFERENCE_FORMS} (service names are lower case)",
            )
        if not match:
            raise InterpolationError(
                f"'${{{body}}}' in {whole!r} is not a valid variable expression",
                "use ${VAR}, ${VAR:-default}, ${VAR?message}, or '$$' for a literal '$'",
            )
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        if op is None:
            return (self._lookup(name) or "",)
        # Compose v2 evaluates the argument lazily: `${A:-${B:?msg}}` is fine while A is set.
        value = self.variables.get(name)
        is_set = value is not None and (value != "" or not op.startswith(":"))
        if op in (":-", "-"):
            return (value,) if is_set else self.template(arg)  # type: ignore[return-value]
        if op in (":+", "+"):
            return self.template(arg) if is_set else ("",)
        if not is_set:  # ":?" or "?"
            message = self.plain(arg) if arg else ""
            raise InterpolationError(
                f"required variable {name} is {'empty' if value == '' else 'not set'}"
                + (f": {message}" if message else ""),
                f"set {name} in the environment or in the .env file beside the topology",
            )
        return (value,)  # type: ignore[return-value]


def _joined(parts: list[str | Reference]) -> Template:
    """Adjacent literal parts merged into one; empty literals dropped."""
    out: list[str | Reference] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part != "":
            out.append(part)
    return tuple(out)


def _closing_brace(text: str, start: int) -> int:
    """Index of the '}' closing a '${' whose body starts at `start`.

    Every '{' opens a level, as in Compose v2, so a JSON default (`${X:-{"a":1}}`) is
    read whole instead of ending at its first '}'.
    """
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def references(template: Template) -> list[Reference]:
    return [part for part in template if isinstance(part, Reference)]
