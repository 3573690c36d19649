"""A build context: the files Docker would receive, their content hash, and the tar to send.

The hash and the tar come from the same file list, honouring `.dockerignore` the way the
Docker SDK does, so what is hashed is exactly what is built. File contents and the
executable bit count; modification times never do.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO

from envctl.backend.engine import context_paths


GENERATED_DOCKERFILE = ".envctl.Dockerfile"


@dataclass(frozen=True)
class BuildContext:
    root: Path
    dockerfile: str = "Dockerfile"  # relative to root; may lie outside it ("../x.Dockerfile")

    @cached_property
    def dockerfile_path(self) -> Path:
        return (self.root / self.dockerfile).resolve()

    @cached_property
    def dockerfile_inside(self) -> bool:
        return self.dockerfile_path.is_relative_to(self.root.resolve())

    @cached_property
    def files(self) -> tuple[str, ...]:
        """Paths relative to the root, sorted, after `.dockerignore`."""
        ignore = self.root / ".dockerignore"
        patterns = []
        if ignore.is_file():
            patterns = [line.strip() for line in ignore.read_text().splitlines()
                        if line.strip() and not line.strip().startswith("#")]
        inside = os.path.relpath(self.dockerfile_path, self.root) if self.dockerfile_inside else None
        return tuple(sorted(context_paths(str(self.root), patterns, inside)))

    def digest(self) -> str:
        """sha256 over each file's path, type, executable bit and content, and the Dockerfile."""
        h = hashlib.sha256()
        for rel in self.files:
            path = self.root / rel
            info = path.lstat()
            h.update(rel.encode() + b"\0")
            if stat.S_ISLNK(info.st_mode):
                h.update(b"L" + os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                h.update(b"D")
            else:
                h.update(b"X" if info.st_mode & 0o111 else b"F")
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
            h.update(b"\0")
        h.update(b"dockerfile\0" + self.dockerfile_path.read_bytes())
        return h.hexdigest()

    def archive(self, extra_lines: tuple[str, ...] = (), dockerfile_text: str | None = None) -> tuple[IO[bytes], str]:
        """The context as an uncompressed tar, and the name of the Dockerfile inside it.

        `extra_lines` are appended to the Dockerfile (envctl's labels, in one step, since
        each metadata step costs a container commit in the classic builder).
        `dockerfile_text` replaces the Dockerfile (one part of a build with secret steps).
        """
        buffer: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=32 << 20)
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for rel in self.files:
                tar.add(self.root / rel, arcname=rel, recursive=False)
            data = self.generated_dockerfile(extra_lines, dockerfile_text)
            entry = tarfile.TarInfo(GENERATED_DOCKERFILE)
            entry.size = len(data)
            entry.mode = 0o644
            tar.addfile(entry, io.BytesIO(data))
        buffer.seek(0)
        return buffer, GENERATED_DOCKERFILE

    def generated_dockerfile(self, extra_lines: tuple[str, ...] = (), dockerfile_text: str | None = None) -> bytes:
        """The Dockerfile as the context tar carries it (GENERATED_DOCKERFILE): `extra_lines` appended."""
        # A text read with surrogateescape (envctl's parts of a Dockerfile) gives back the file's own bytes.
        data = self.dockerfile_path.read_bytes() if dockerfile_text is None \
            else dockerfile_text.encode(errors="surrogateescape")
        if extra_lines:
            data = data.rstrip(b"\n") + b"\n" + "\n".join(extra_lines).encode() + b"\n"
        return data
