"""Issue 19's figures, this checkout against the commit before it, in one run.

    python bench/benchmark.py --issue19 [--before 2c5c619] [--cold-rounds 2] [--rounds 3]
    python bench/benchmark.py --issue19 --cold-rounds 0 [--warm-on host]   # (c) alone, printed only

(a) The reference stack's cold `up` on an engine with no envctl images: each side, each
    round, on a fresh private engine (bench/private_engine.py: its own dockerd, data-root and
    network namespace, the host engine's storage driver), with a fresh HOME/XDG_CACHE_HOME
    (a fresh machine: no package cache). The two sides alternate which goes first.
(b) A one-file rebuild: on the same engine right after its cold `up`, services/users/app.py
    changed, `envctl build` (twice, the median).
(c) The 12-service warm `up` (bench/benchmark.py's topology) beside docker-compose 1.29,
    before, after and compose interleaved round by round: on one more private engine (the
    default: nobody else's containers slow its engine, and no lock is needed), or with
    --warm-on host on the host engine under the shared integration lock.

Writes the issue-19 section of bench/RESULTS.md and the start-up report's picture of the
median cold `up` of each side to docs/cold-before.svg and docs/cold-after.svg.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import docker

import benchmark
from compare import checkout_before
from private_engine import PrivateEngine

BEFORE = "2c5c619"
BEGIN, END = "<!-- issue-19: begin -->", "<!-- issue-19: end -->"
LOCK = "/tmp/envctl-integration.lock"
UP_LIMIT = 1500  # seconds: a cold `up` that takes longer is a failure, not a figure
STACK_PARTS = ("envctl.yaml", "services", "fixtures")
REBUILDS = 2


def _timed(command: list[str], cwd: Path, env: dict[str, str], limit: float, what: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{what}: not done after {limit:.0f} s") from None
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({elapsed:.1f} s):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def _copy_stack(root: Path) -> None:
    for part in STACK_PARTS:
        source = benchmark.REPO / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / part)


def _save_report(stack: Path, into: Path) -> dict:
    """The run's start-up report and timeline (before `down` can touch them)."""
    runs = sorted((stack / ".envctl" / "runs").glob("*/timeline.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        return {}
    into.mkdir(parents=True, exist_ok=True)
    for name in ("timeline.json", "report.html"):
        if (runs[-1].parent / name).exists():
            shutil.copy(runs[-1].parent / name, into / name)
    return json.loads((into / "timeline.json").read_text())


def cold_side(side: str, cli: list[str], env: dict[str, str], work: Path, round_: int) -> dict:
    """One cold `up` of the reference stack on a fresh private engine, then the one-file rebuilds."""
    base = work / f"{side}-{round_}"
    stack, home = base / "stack", base / "home"
    stack.mkdir(parents=True)
    home.mkdir()
    _copy_stack(stack)
    out: dict = {}
    with PrivateEngine(Path(tempfile.mkdtemp(prefix="envbench-engine-"))) as engine:
        run_env = {**env, **engine.env(), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
        info = engine.info()
        out["engine"] = {"version": info["ServerVersion"], "driver": info["Driver"], "images": info["Images"],
                         "start": engine.start_seconds}
        out["up"], printed = _timed(engine.inside([*cli, "up"]), stack, run_env, UP_LIMIT, f"{side}: cold up")
        built = re.search(r"(\d+) images built", printed)
        out["built"] = int(built.group(1)) if built else None
        timeline = _save_report(stack, work / "reports" / f"{side}-{round_}")
        out["timeline total"] = max((e["t"] for e in timeline.get("events", [])), default=None)
        app = stack / "services" / "users" / "app.py"
        out["rebuild"] = []
        for change in range(REBUILDS):
            app.write_text(app.read_text() + f"# change {change}\n")
            out["rebuild"].append(_timed(engine.inside([*cli, "build"]), stack, run_env, 300,
                                         f"{side}: one-file rebuild")[0])
        subprocess.run(engine.inside([*cli, "down", "--no-logs"]), cwd=stack, env=run_env, capture_output=True,
                       timeout=180)
    shutil.rmtree(base, ignore_errors=True)
    return out


def measure_cold(clis: dict[str, list[str]], env: dict[str, str], work: Path, rounds: int) -> dict:
    sides = list(clis)
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(rounds):
        for side in (sides if round_ % 2 == 0 else sides[::-1]):  # alternate who goes first
            print(f"cold round {round_ + 1}/{rounds}: {side} ...", flush=True)
            run = cold_side(side, clis[side], env, work, round_)
            runs[side].append(run)
            print(f"  {side}: cold up {run['up']:.1f} s, one-file rebuild "
                  f"{', '.join(f'{t:.2f}' for t in run['rebuild'])} s", flush=True)
    return runs


class HostLock:
    """The shared integration lock, for the parts that touch the host engine (bounded wait)."""

    def __init__(self, limit: float = 1800) -> None:
        self.limit = limit

    def __enter__(self) -> "HostLock":
        self.file = open(LOCK, "a")
        deadline = time.monotonic() + self.limit
        while True:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{LOCK}: still held by another run after {self.limit:.0f} s") from None
                time.sleep(1)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _cli_timed(cli: list[str], *args: str, cwd: Path, env: dict[str, str]) -> float:
    return _timed([*cli, *args], cwd, env, 300, f"{cli[-1]} {' '.join(args)}")[0]


def _compose(root: Path, env: dict[str, str], inside, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(inside(["docker-compose", "-p", "envctlbench", *args]), cwd=root, env=env, check=True,
                   capture_output=True, timeout=300)
    return time.perf_counter() - started


def _compose_up_to_healthy(root: Path, env: dict[str, str], inside, client: docker.DockerClient) -> float:
    """`up -d` returns once the last level is started; all-healthy is when every healthcheck passes."""
    started = time.perf_counter()
    _compose(root, env, inside, "up", "-d")
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        containers = client.containers.list(filters={"label": "com.docker.compose.project=envctlbench"})
        states = [c.attrs["State"].get("Health", {}).get("Status") for c in containers]
        if len(states) == benchmark.LEVELS * benchmark.PER_LEVEL and all(s == "healthy" for s in states):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise SystemExit("docker-compose: not all healthy after 120 s")


def measure_warm(clis: dict[str, list[str]], env: dict[str, str], work: Path, rounds: int, on: str) -> dict:
    """The 12-service warm `up` and `down`: before, after and docker-compose, interleaved round by round.

    On a private engine (`on="private"`: the same dockerd and storage driver, nobody else's
    containers on it, no lock needed) or on the host engine under the shared lock."""
    benchmark.ensure_compose()
    root = work / "twelve"
    benchmark.write_topology(root)
    if on == "private":
        with PrivateEngine(Path(tempfile.mkdtemp(prefix="envbench-engine-")), role="warm") as engine:
            client = docker.DockerClient(base_url=engine.env()["DOCKER_HOST"])
            return _warm_rounds(clis, {**env, **engine.env()}, root, rounds, engine.inside, client)
    client = docker.from_env()
    with HostLock():
        try:
            return _warm_rounds(clis, env, root, rounds, lambda argv: argv, client)
        finally:
            subprocess.run([*clis["after"], "down", "--all"], cwd=root, env=env, capture_output=True, timeout=300)
            subprocess.run(["docker-compose", "-p", "envctlbench", "down"], cwd=root, capture_output=True,
                           timeout=300)
            benchmark.clean_images(client)


def _warm_rounds(clis: dict[str, list[str]], env: dict[str, str], root: Path, rounds: int, inside,
                 client: docker.DockerClient) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for name, cli in clis.items():  # each side's images (their tags may differ), not timed
        print(f"12 services: {name} build ...", flush=True)
        _timed(inside([*cli, "build"]), root, env, 900, f"{name}: build of the 12 services")
    image = next(t for i in client.images.list(filters={"label": f"envctl.project={benchmark.PROJECT}"})
                 for t in i.tags if t.startswith(f"{benchmark.PROJECT}/l0s0:"))
    benchmark.write_compose(root, image)
    for round_ in range(rounds):
        for name, cli in clis.items():
            for what, args in (("up", ["up"]), ("down", ["down", "--no-logs"])):
                elapsed = _timed(inside([*cli, *args]), root, env, 300, f"{name}: {what}")[0]
                times.setdefault(f"{name} {what}", []).append(elapsed)
        times.setdefault("compose up", []).append(_compose_up_to_healthy(root, env, inside, client))
        times.setdefault("compose down", []).append(_compose(root, env, inside, "down"))
        # The engine's floor: the same 12 containers created and started at once, nothing waited for.
        floor = benchmark.floor_up(client, image)
        times.setdefault("floor up", []).append(floor[0])
        times.setdefault("floor down", []).append(floor[1])
        print(f"warm round {round_ + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in times.items() if k.endswith(" up")), flush=True)
    return times


def warm_summary(warm: dict[str, list[float]]) -> str:
    """The warm rounds' medians, and each side's `up` over compose's."""
    med = {k: statistics.median(v) for k, v in warm.items()}
    lines = [f"{k}: median {med[k]:.2f} s of {[round(x, 2) for x in v]}" for k, v in warm.items()]
    lines += [f"{side} up / compose up: {med[f'{side} up'] / med['compose up']:.2f}x"
              for side in ("before", "after", "floor") if f"{side} up" in med]
    return "\n".join(lines)


# -- the pictures and the section ------------------------------------------------------------

def svg_of_report(report: Path, title: str) -> str:
    """The report page's SVG, standalone: its style sheet inside, and a title line on top."""
    html = report.read_text()
    svg = html[html.index("<svg"):html.index("</svg>") + len("</svg>")]
    style = html[html.index("<style>") + len("<style>"):html.index("</style>")]
    rules = "\n".join(line for line in style.splitlines() if any(k in line for k in (".grid", ".tick", ".label",
                                                                                    ".bar", ".failed")))
    width, height = (int(x) for x in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 24}" '
            f'role="img" aria-label="{title}"><style>\ntext {{ font-family: system-ui, sans-serif; }}\n{rules}\n'
            f'</style><rect width="100%" height="100%" fill="#fff"/>'
            f'<text x="8" y="16" style="font-size:13px;font-weight:700">{title}</text><g transform="translate(0,24)">')
    body = svg[svg.index(">") + 1:-len("</svg>")]
    return head + body + "</g></svg>\n"


def write_pictures(runs: dict[str, list[dict]], work: Path, docs: Path) -> dict[str, str]:
    """docs/cold-SIDE.svg from the side's median cold `up` (by wall time)."""
    written = {}
    for side, side_runs in runs.items():
        ordered = sorted(range(len(side_runs)), key=lambda i: side_runs[i]["up"])
        index = ordered[(len(ordered) - 1) // 2]
        report = work / "reports" / f"{side}-{index}" / "report.html"
        if not report.exists():
            continue
        run = side_runs[index]
        on_timeline = f"{run['timeline total']:.1f} s on the timeline, " if run.get("timeline total") else ""
        title = (f"cold envctl up of the reference stack, {side} ({run['label']}): all ready after "
                 f"{on_timeline}{run['up']:.1f} s wall clock")
        path = docs / f"cold-{side}.svg"
        path.write_text(svg_of_report(report, title))
        written[side] = str(path.relative_to(benchmark.REPO))
    return written


def _machine(engine: dict) -> str:
    client = docker.from_env()
    version, info = client.version(), client.info()
    compose = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True).stdout.strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}. Host engine: Docker {version['Version']} "
            f"(API {version['ApiVersion']}), storage driver {info['Driver']}; the private engines for the cold "
            f"`up`: the same dockerd {engine['version']}, storage driver {engine['driver']}, started empty "
            f"({engine['images']} images). docker-compose {compose}")


def section(results: dict) -> str:
    cold, warm, labels = results["cold"], results["warm"], results["labels"]
    med = statistics.median
    up = {s: med(r["up"] for r in runs) for s, runs in cold.items()}
    rebuild = {s: med(t for r in runs for t in r["rebuild"]) for s, runs in cold.items()}
    raw_cold = {s: [round(r["up"], 1) for r in runs] for s, runs in cold.items()}
    raw_rebuild = {s: [round(t, 2) for r in runs for t in r["rebuild"]] for s, runs in cold.items()}
    built = {s: runs[0].get("built") for s, runs in cold.items()}
    w = {k: med(v) for k, v in warm.items()}
    rounds = len(next(iter(warm.values()))) if warm else 0
    warm_where = ("on a private engine too: the same dockerd and storage driver, no other run's containers on it"
                  if results.get("warm on") == "private" else "on the host engine under the shared integration lock")
    ok = lambda good: "met" if good else "**not met**"  # noqa: E731
    lines = [
        BEGIN,
        "## Issue 19: the cold path, this change against the commit before it", "",
        f"Date: {results['date']}. Machine: {results['machine']}. "
        f"Before: {labels['before']}; after: {labels['after']}. Produced by "
        f"`{results['command']}` (one run: the cold rounds, then the warm ones, {warm_where}). The machine's "
        f"load average (1 min) was {results.get('load', ('?', '?'))[0]} at the start and "
        f"{results.get('load', ('?', '?'))[1]} at the end: the same cores ran anything else on the machine.", "",
        "| | before | after | after / before | target | |", "| --- | --- | --- | --- | --- | --- |",
        f"| (a) reference stack, cold `envctl up` (no envctl images, fresh engine, no package cache) "
        f"| {up['before']:.1f} s | {up['after']:.1f} s | {up['after'] / up['before']:.2f}x | <= 0.6x "
        f"| {ok(up['after'] / up['before'] <= 0.6)} |",
        f"| (b) one file changed (`services/users/app.py`), `envctl build` | {rebuild['before']:.2f} s "
        f"| {rebuild['after']:.2f} s | {rebuild['after'] / rebuild['before']:.2f}x | < 2 s | "
        f"{ok(rebuild['after'] < 2)} |",
        f"| (c) 12 services warm, `envctl up` to all-ready | {w['before up']:.2f} s | {w['after up']:.2f} s "
        f"| {w['after up'] / w['before up']:.2f}x | <= 0.4x compose | {ok(w['after up'] / w['compose up'] <= 0.4)} |",
        f"| (c) the same, / docker-compose `up` ({w['compose up']:.2f} s) | {w['before up'] / w['compose up']:.2f}x "
        f"| {w['after up'] / w['compose up']:.2f}x | | | |",
        *([f"| (c) the engine's floor: the same 12 containers created and started at once, nothing waited for "
           f"| | {w['floor up']:.2f} s | | | {w['floor up'] / w['compose up']:.2f}x compose; after's `up` is "
           f"{w['after up'] / w['floor up']:.2f}x the floor |"]
          if "floor up" in w else []),
        f"| 12 services, `down --no-logs` | {w['before down']:.2f} s | {w['after down']:.2f} s "
        f"| {w['after down'] / w['before down']:.2f}x | (compose: {w['compose down']:.2f} s) | |", "",
        f"Medians: (a) of {len(cold['after'])} rounds per side, (b) of {REBUILDS} rebuilds per cold round, "
        f"(c) of {rounds} interleaved rounds. Images built by the cold `up`: before {built['before']}, "
        f"after {built['after']}.", "",
        "How (a) and (b) are measured: each side, each round, gets a throw-away `dockerd` "
        "(bench/private_engine.py): its own data-root, exec-root, socket, containerd namespace and cgroup "
        "parent, fuse-overlayfs like the host engine, in its own network and mount namespace with outbound "
        "access through a NAT for its /30 only (the Debian mirror for the bootstraps, PyPI for the Python "
        "base's pip), at the host uplink's MTU (the namespace reaches the mirror as fast as the host does). "
        "`envctl up` runs inside that network namespace with DOCKER_HOST on the private "
        "socket and a fresh HOME and XDG_CACHE_HOME (a fresh machine: nothing cached). The two sides "
        "alternate who goes first. Wall clock, Python start-up included; the mirror's and PyPI's speed "
        "is part of the figure for both sides. (b) runs on that engine right after its cold `up`. "
        "(c) is bench/benchmark.py's 12-service topology, warm (each side's images built first, not timed) (four dependency levels of three HTTP servers); "
        "compose is `docker-compose up -d` polled until every healthcheck is healthy (500 ms interval).", "",
        f"Raw: cold up {json.dumps(raw_cold)}; one-file rebuild {json.dumps(raw_rebuild)}; "
        f"warm `{json.dumps({k: [round(x, 2) for x in v] for k, v in warm.items()})}`", "",
    ]
    for side, path in results.get("pictures", {}).items():
        lines += [f"![cold up, {side}](../{path})", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    benchmark.write_section(path, text, BEGIN, END)


def _label(revision: str) -> str:
    return subprocess.run(["git", "-C", str(benchmark.REPO), "log", "-1", "--format=%h %s", revision],
                          capture_output=True, text=True).stdout.strip()


def run(before: str, cold_rounds: int, warm_rounds: int, out: Path, command: str, warm_on: str = "private",
        skip_warm: bool = False) -> dict:
    if os.geteuid() != 0:
        raise SystemExit("the cold rounds start private engines and network namespaces: run as root")
    work = Path(tempfile.mkdtemp(prefix="envctl-issue19-"))
    clis, env = checkout_before(before, work)
    labels = {"before": _label(before), "after": _label("HEAD") + (" (+ uncommitted changes)" if subprocess.run(
        ["git", "-C", str(benchmark.REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True).stdout.strip() else "")}
    results: dict = {"labels": labels, "command": command,
                     "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "load": [f"{os.getloadavg()[0]:.2f}"]}
    try:
        results["cold"] = measure_cold(clis, env, work, cold_rounds) if cold_rounds else {}
        for side, runs in results["cold"].items():
            for r in runs:
                r["label"] = labels[side].split()[0]
        (work / "cold.json").write_text(json.dumps(results["cold"]))
        results["pictures"] = write_pictures(results["cold"], work, benchmark.REPO / "docs")
        results["warm"] = {} if skip_warm else measure_warm(clis, env, work, warm_rounds, warm_on)
        results["warm on"] = warm_on
        results["load"].append(f"{os.getloadavg()[0]:.2f}")
    finally:
        subprocess.run(["git", "-C", str(benchmark.REPO), "worktree", "remove", "--force", str(work / "before")],
                       capture_output=True)
        keep = Path(tempfile.gettempdir()) / "envctl-issue19-last.json"
        keep.write_text(json.dumps({k: v for k, v in results.items()}, default=str))
        shutil.rmtree(work, ignore_errors=True)
    if not cold_rounds:  # the warm part alone (to iterate on it): its figures, no section written
        print(warm_summary(results["warm"]))
        return results
    results["machine"] = _machine(results["cold"]["after"][0]["engine"])
    if results["warm"]:
        text = section(results)
        print(text)
        write_section(out, text)
    return results
