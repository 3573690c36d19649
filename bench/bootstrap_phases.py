"""Where a cold bootstrapped base's time goes, phase by phase, on a fresh private engine.

    flock /tmp/envctl-integration.lock .venv/bin/python bench/bootstrap_phases.py [--rounds 2]

Each round: a fresh private engine (bench/private_engine.py) and a fresh, empty package cache
(a throw-away HOME/XDG_CACHE_HOME: a fresh machine), then the reference stack's `os` base made
as `envctl up` makes it (envctl.images.bootstrap.bootstrap, then Engine.load_rootfs), each step
timed: mmdebstrap's own phases from its log (each line timestamped as it appears), the tarball's
hash, the `docker save`-shaped archive written around it, and the engine's load of that archive.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# mmdebstrap's progress lines (1.3.x) that start a phase, and the name given to the time until the next one
MARKS = (("I: automatically chosen", "start"), ("I: running --setup-hook", "setup hook (cache in)"),
         ("I: running apt-get update", "apt update"),
         ("I: downloading packages", "download"), ("I: extracting archives", "extract"),
         ("I: installing essential packages", "install essential (dpkg)"),
         ("I: installing remaining packages", "install the rest (apt+dpkg)"),
         ("I: running --customize-hook", "customize hook (cache out)"), ("I: cleaning package lists", "cleanup"), ("I: creating tarball", "tar"),
         ("I: done", "done"), ("I: removing tempdir", "remove tempdir"), ("I: success", "after success"))


def _stamp_lines(path: Path, stop: threading.Event, seen: list[tuple[float, str]]) -> None:
    """Append (time, line) for each line of `path` as it appears."""
    offset, partial = 0, ""
    while True:
        done = stop.is_set()
        with open(path, errors="replace") as f:
            f.seek(offset)
            chunk = f.read()
            offset = f.tell()
        now = time.perf_counter()
        lines = (partial + chunk).split("\n")
        partial = lines.pop()
        seen.extend((now, line) for line in lines)
        if done:
            return
        time.sleep(0.02)


def mmdebstrap_phases(stamped: list[tuple[float, str]], started: float, ended: float) -> dict[str, float]:
    points = [(started, "before mmdebstrap's first line")]
    for t, line in stamped:
        for prefix, name in MARKS:
            if line.startswith(prefix):
                points.append((t, name))
    points.append((ended, "end"))
    phases: dict[str, float] = {}
    for (t0, name), (t1, _) in zip(points, points[1:]):
        phases[name] = phases.get(name, 0.0) + (t1 - t0)
    return phases


def one_round(work: Path, tmpdir: str | None) -> dict[str, float]:
    from private_engine import PrivateEngine  # noqa: E402 (bench/ on the path)

    home = work / "home"
    home.mkdir(parents=True)
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    script = [sys.executable, __file__, "--inside", str(work)] + (["--tmpdir", tmpdir] if tmpdir else [])
    with PrivateEngine(Path(tempfile.mkdtemp(prefix="envbench-engine-"))) as engine:
        result = subprocess.run(engine.inside(script), env={**os.environ, **engine.env(), **env},
                                capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"the round failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def inside(work: Path) -> dict[str, float]:
    """In the engine's namespace, with its DOCKER_HOST and the fresh HOME: the base, phase by phase."""
    from envctl.backend.engine import Engine
    from envctl.images import bootstrap
    from envctl.topology import Bootstrap

    spec = Bootstrap(distro="debian", suite="bookworm", packages=("ca-certificates", "python3"))
    engine = Engine.connect()
    tarball = work / "rootfs.tar"
    log_path = work / "base-os.log"
    stamped: list[tuple[float, str]] = []
    stop = threading.Event()
    with open(log_path, "w") as log:
        watcher = threading.Thread(target=_stamp_lines, args=(log_path, stop, stamped))
        watcher.start()
        t0 = time.perf_counter()
        bootstrap.bootstrap(engine, spec, "linux/amd64", tarball, log, "base 'os'", threading.Event())
        t1 = time.perf_counter()
        stop.set()
        watcher.join()
    out = {f"mmdebstrap: {k}": v for k, v in mmdebstrap_phases(stamped, t0, t1).items()}
    out["bootstrap (all)"] = t1 - t0
    with open(tarball, "rb") as layer:
        digest = "sha256:" + hashlib.file_digest(layer, "sha256").hexdigest()
    t2 = time.perf_counter()
    out["hash the tarball"] = t2 - t1
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/bash"]},
              "rootfs": {"type": "layers", "diff_ids": [digest]}, "history": [{"created_by": "bench"}]}
    manifest = [{"Config": "config.json", "RepoTags": ["envbench/os-rootfs:phases"], "Layers": ["0/layer.tar"]}]
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(str(tarball), arcname="0/layer.tar")
            for name, value in (("config.json", config), ("manifest.json", manifest)):
                data = json.dumps(value).encode()
                entry = tarfile.TarInfo(name)
                entry.size = len(data)
                tar.addfile(entry, io.BytesIO(data))
        archive.seek(0)
        t3 = time.perf_counter()
        out["write the load archive"] = t3 - t2
        list(engine.api.load_image(archive))
    t4 = time.perf_counter()
    out["engine: load"] = t4 - t3
    out["tarball MB"] = tarball.stat().st_size / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tmpdir", help="mmdebstrap's TMPDIR (default: as envctl leaves it)")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        if args.tmpdir:
            os.environ["TMPDIR"] = args.tmpdir
        print(json.dumps(inside(Path(args.inside))))
        return
    runs = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="envbench-phases-") as work:
            runs.append(one_round(Path(work), args.tmpdir))
        print(json.dumps(runs[-1]), flush=True)
    for key in runs[0]:
        values = [run.get(key, 0.0) for run in runs]
        print(f"{key:40s} {statistics.median(values):7.2f}   ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
