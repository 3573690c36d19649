""".env files read as Compose v2 reads them (compose-go's dotenv parser).

``KEY=value`` or ``KEY: value`` statements, ``export`` prefixes, ``#`` comments (inline only
after a space in unquoted values), single quotes taken literally, double quotes with
backslash escapes and ``${...}`` expansion, values spanning lines inside quotes, a bare
``KEY`` taking the host's value, and a UTF-8 byte-order mark ignored. A line Compose would
refuse is an error naming the line, never skipped.

python-dotenv parses most of this too, but differs on enough rules (``KEY: value``, the
escapes it decodes, the expansion grammar, errors reported per line) that adapting it
would take more code than this parser; see tests/unit/test_dotenv.py for the cases.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from envctl.topology.interpolation import InterpolationError, Interpolator

# Horizontal space only: a newline ends a statement.
_SPACE = " \t\v\f\r\x85\xa0"
_KEY_CHAR = re.compile(r"[\w.\-\[\]]")
# The escapes Compose decodes in double quotes; any other backslash stays as written.
_ESCAPE = re.compile(r"\\(?:[abfnrtv$\"\\]|0[0-7]{0,3})")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   '"': '"', "\\": "\\", "$": "$$"}  # `$$`: a literal '$' once expanded


class DotenvError(ValueError):
    """A statement Compose would refuse; `line` is 1-based."""

    def __init__(self, line: int, message: str, fix: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message
        self.fix = fix


def parse_dotenv(text: str, lookup: Callable[[str], str | None] | None = None) -> dict[str, str]:
    """The variables `text` defines; `lookup` gives host values, which win in expansions."""
    return _Parser(text.removeprefix("\ufeff"), lookup or (lambda name: None)).parse()


class _Parser:
    def __init__(self, text: str, lookup: Callable[[str], str | None]) -> None:
        self.text = text
        self.lookup = lookup
        self.pos = 0
        self.values: dict[str, str] = {}

    def parse(self) -> dict[str, str]:
        while self._next_statement():
            self._statement()
        return self.values

    def _line(self, pos: int | None = None) -> int:
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def _next_statement(self) -> bool:
        """Skip blank lines and comments; False at the end of the text."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char.isspace():
                self.pos += 1
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return True
        return False

    def _statement(self) -> None:
        start = self.pos
        if re.match(r"export[ \t]", self.text[self.pos :]):
            self.pos += len("export")
            self._skip_space()
        key_start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "=:\n":
            char = self.text[self.pos]
            if char not in _SPACE and not _KEY_CHAR.match(char):
                raise DotenvError(self._line(), f"unexpected character {char!r} in the variable name",
                                  "write KEY=value (names use letters, digits, '_', '.' and '-')")
            self.pos += 1
        key = self.text[key_start : self.pos].strip(_SPACE)
        if any(c in _SPACE for c in key):
            raise DotenvError(self._line(start), f"the name {key!r} contains a space",
                              "remove the space, or quote the value after '='")
        if self.pos >= len(self.text) or self.text[self.pos] == "\n":
            host = self.lookup(key)  # a bare KEY passes the host's value through
            if host is not None:
                self.values[key] = host
            return
        self.pos += 1  # past '=' or ':'
        self._skip_space()
        self.values[key] = self._value(start)

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def _value(self, start: int) -> str:
        quote = self.text[self.pos] if self.pos < len(self.text) else ""
        if quote not in ("'", '"'):
            end = self.text.find("\n", self.pos)
            end = len(self.text) if end < 0 else end
            raw = self.text[self.pos : end].split(" #", 1)[0].rstrip()
            self.pos = end
            return self._expand(raw, start)
        close = self._closing_quote(quote)
        if close < 0:
            raise DotenvError(self._line(start), "the quoted value is not terminated",
                              f"close it with {quote}")
        raw = self.text[self.pos + 1 : close]
        self.pos = close + 1
        if quote == "'":
            return raw
        return self._expand(_ESCAPE.sub(_unescape, raw), start)

    def _closing_quote(self, quote: str) -> int:
        i = self.pos + 1
        while i < len(self.text):
            if self.text[i] == "\\":
                i += 2
                continue
            if self.text[i] == quote:
                return i
            i += 1
        return -1

    def _expand(self, raw: str, start: int) -> str:
        variables = _Layered(self.lookup, self.values)
        try:
            return Interpolator(variables).plain(raw)
        except InterpolationError as exc:
            raise DotenvError(self._line(start), str(exc), exc.fix) from None


def _unescape(match: re.Match[str]) -> str:
    body = match.group(0)[1:]
    if body[0] == "0":
        return chr(int(body[1:], 8)) if len(body) > 1 else match.group(0)
    return _SIMPLE_ESCAPES[body]


class _Layered(Mapping[str, str]):
    """Host values first, then what the file defined above: Compose's lookup order."""

    def __init__(self, lookup: Callable[[str], str | None], defined: dict[str, str]) -> None:
        self.lookup = lookup
        self.defined = defined

    def __getitem__(self, name: str) -> str:
        value = self.lookup(name)
        if value is None:
            return self.defined[name]
        return value

    def __iter__(self):
        return iter(self.defined)

    def __len__(self) -> int:
        return len(self.defined)
