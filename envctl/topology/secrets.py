"""Secret values, and keeping them out of everything envctl prints or saves on its own account.

A value is secret when the topology declares it (`secrets:`), when an environment variable's
name says so (PASSWORD, TOKEN, SECRET, ..._KEY, CREDENTIALS, PRIVATE), or when it is the
password inside a URL. `Masker` replaces each such value with `******` wherever it appears:
the CLI's output streams, saved container logs, build logs and diagnostics.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import TextIO

from envctl.topology import Topology

MASK = "******"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)(API)?KEY($|_)|APIKEY", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@/\s]+)@")
_NOT_SECRETS = {"true", "false", "yes", "no", "none", "null", "on", "off"}
MIN_LENGTH = 4  # shorter values would mask ordinary words and numbers everywhere


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def worth_masking(value: str) -> bool:
    return len(value) >= MIN_LENGTH and value.lower() not in _NOT_SECRETS and not value.isdigit()


def topology_secrets(topology: Topology) -> set[str]:
    """Every secret value the topology holds: declared secrets and secret-looking environment values."""
    values = {s.value for s in topology.secrets.values() if s.value}
    for service in topology.services.values():
        for name, template in service.environment:
            literal = "".join(part for part in template if isinstance(part, str))
            if looks_secret(name) and all(isinstance(part, str) for part in template):
                values.add(literal)
            values.update(_URL_PASSWORD.findall(literal))
    return {v for v in (value.strip() for value in values) if worth_masking(v)}


class Masker:
    """Replaces known secret values with `******`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: set[str] = set()
        self.enabled = True
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        fresh = {v for v in values if worth_masking(v)} - self.values
        if fresh:
            self.values |= fresh
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self.values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def mask(self, text: str) -> str:
        if not self.enabled or self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def mask_bytes(self, data: bytes) -> bytes:
        if not self.enabled or self._pattern is None or not data:
            return data
        return self.mask(data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")


def for_topology(topology: Topology) -> Masker:
    return Masker(topology_secrets(topology))


class MaskingWriter(io.TextIOBase):
    """A text stream or log file that masks what is written before passing it on."""

    def __init__(self, target: TextIO, masker: Masker) -> None:
        self.target = target
        self.masker = masker
        self.name = getattr(target, "name", "")

    def write(self, text: str) -> int:
        self.target.write(self.masker.mask(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    @property
    def buffer(self):  # raw bytes (a command's output through 'envctl exec') pass unchanged
        return self.target.buffer
