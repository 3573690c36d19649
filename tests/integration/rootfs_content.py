"""What a root filesystem tar holds, compared by content: names, types, modes, owners, file hashes.

Not compared, and why:
- modification times: they are when mmdebstrap ran;
- etc/hostname and etc/resolv.conf: mmdebstrap copies them from the machine it runs on (the
  host, or the throw-away container), and the engine replaces both in every container anyway;
- etc/machine-id, var/cache/ldconfig/aux-cache, var/log/: written fresh on each run (an id,
  a cache of the run's ld.so state, logs with the run's timestamps).
"""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

DIFFERS_BY_MACHINE = ("etc/hostname", "etc/resolv.conf")
DIFFERS_BY_RUN = ("etc/machine-id", "var/cache/ldconfig/aux-cache")
DIFFERS_BY_RUN_UNDER = ("var/log/",)


def ignored(name: str) -> bool:
    return name in DIFFERS_BY_MACHINE + DIFFERS_BY_RUN or name.startswith(DIFFERS_BY_RUN_UNDER)


def content(tarball: Path) -> dict[str, tuple]:
    """{path: (type, mode, uid, gid, sha256 or link target)} for every entry not ignored."""
    entries = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            if not name or ignored(name):
                continue
            if member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                what = hashlib.sha256(source.read()).hexdigest()
            else:
                what = member.linkname
            entries[name] = (member.type, member.mode, member.uid, member.gid, what)
    return entries


def differences(first: Path, second: Path) -> list[str]:
    a, b = content(first), content(second)
    return [f"{name}: {a.get(name)} != {b.get(name)}" for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
