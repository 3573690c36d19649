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
        literal: list[str] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != "$" or i + 1 >= n:
                literal.append(ch)
                i += 1
                continue
            nxt = text[i + 1]
            if nxt == "$":
                literal.append("$")
                i += 2
            elif nxt == "{":
                end = _closing_brace(text, i + 2)
                if end < 0:
                    raise InterpolationError(
                        f"unterminated '${{' in {text!r}",
                        "close it with '}', or write '$$' for a literal '$'",
                    )
                value = self._braced(text[i + 2 : end], text)
                if isinstance(value, Reference):
                    if literal:
                        parts.append("".join(literal))
                        literal = []
                    parts.append(value)
                else:
                    literal.append(value)
                i = end + 1
            else:
                match = _UNBRACED.match(text, i + 1)
                if match:
                    literal.append(self._lookup(match.group(0)) or "")
                    i = match.end()
                else:
                    literal.append("$")
                    i += 1
        if literal:
            parts.append("".join(literal))
        return tuple(parts)

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

    def _braced(self, body: str, whole: str) -> str | Reference:
        ref = _REFERENCE.match(body)
        if ref:
            port = ref.group("port")
            return Reference(ref.group("target"), ref.group("attr"), int(port) if port else None)
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
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = self.variables.get(name)
        if op is None:
            if value is None and self.unset is not None:
                self.unset.add(name)
            return value or ""
        arg = self.plain(arg) if arg else ""
        empty_counts = op.startswith(":")
        is_set = value is not None and (value != "" or not empty_counts)
        if op in (":-", "-"):
            return value if is_set else arg  # type: ignore[return-value]
        if op in (":+", "+"):
            return arg if is_set else ""
        if not is_set:  # ":?" or "?"
            raise InterpolationError(
                f"required variable {name} is {'empty' if value == '' else 'not set'}"
                + (f": {arg}" if arg else ""),
                f"set {name} in the environment or in the .env file beside the topology",
            )
        return value  # type: ignore[return-value]


def _closing_brace(text: str, start: int) -> int:
    """Index of the '}' closing a '${' whose body starts at `start`, allowing nesting."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def references(template: Template) -> list[Reference]:
    return [part for part in template if isinstance(part, Reference)]


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                value = value.replace("\\n", "\n")
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values
