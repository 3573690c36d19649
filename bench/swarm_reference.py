"""Issue 17: the reference stack's warm `up` and `down` on the 3-node swarm lab, beside the host's engine.

    flock /tmp/envctl-integration.lock python bench/benchmark.py --swarm [--rounds 3]

Run it as root (the lab needs namespaces and dockerd processes of its own) and under the
shared integration lock (it uses the host's engine). The lab is tests/integration/swarmlab.py's,
under its own lock, set up as tests/integration/swarm/test_swarm_reference.py sets it up: a
copy of the reference stack ("shop") in a temporary directory, images built on this machine's
engine and pushed to the lab's registry, nodes pulling from it by the lab's address.

One untimed round first on each side (builds what is missing, pushes every image, nodes pull
what their tasks need), then every pushed image is pulled onto every node, so the timed rounds
are warm everywhere. Then ROUNDS interleaved rounds, the sides alternating who goes first:
`envctl --run RUN up` to all-ready and `envctl --run RUN down --no-logs`, each round a run of
its own, on the lab and on the host engine. Between a lab round's `up` and `down` (untimed):
which node each task landed on; around its `up`: the requests the lab's registry saw.

Leaves nothing: every run it started is taken down by its id, the lab by its records, the
registry's names on the local images are removed, and so are the reference stack's images
this benchmark had to build (none when they were there already).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import benchmark

sys.path.insert(0, str(benchmark.REPO))
from envctl.backend import engine as eng  # noqa: E402
from envctl.backend.engine import Engine  # noqa: E402
from envctl.backend.swarm import TASK_OF  # noqa: E402
from tests.integration import swarmlab  # noqa: E402
from tests.integration.conftest import free_port, remove_images_since  # noqa: E402

PROJECT = "shop"  # the copy keeps the reference stack's name, as the test does: its runs are its own
SIDES = ("lab", "host")
BEGIN, END = "<!-- issue-17: begin -->", "<!-- issue-17: end -->"
# The caller's settings for another backend or run would send the host side elsewhere.
FOREIGN = ("ENVCTL_RUN", "ENVCTL_FILE", "ENVCTL_BACKEND", "ENVCTL_REGISTRY", "ENVCTL_SWARM_REGISTRY",
           "ENVCTL_SWARM_NODES", "ENVCTL_BUILD_HOST")
# An access-log line of docker-registry: "METHOD /v2/NAME/(manifests|blobs)/..." and its status.
REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|PATCH) /v2/\S+/(manifests|blobs)/\S* HTTP/[\d.]+" (\d{3})')


def copy_stack(target: Path) -> Path:
    """The reference stack's files, as test_swarm_reference copies them."""
    target.mkdir(parents=True)
    for part in ("envctl.yaml", "services", "fixtures"):
        source = benchmark.REPO / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__", ".envctl"))
        else:
            shutil.copy(source, target / part)
    return target


def registry_requests(lab: swarmlab.Lab) -> Counter:
    """Requests for manifests and blobs the lab's registry has logged so far, by listener, method and kind."""
    seen: Counter = Counter()
    for listener in ("nodes", "host"):
        log = lab.root / "registry" / f"{listener}.log"
        for match in REQUEST.finditer(log.read_text(errors="replace") if log.exists() else ""):
            seen[f"{listener} {match.group(1)} {match.group(2)}"] += 1
    return seen


def placements(lab: swarmlab.Lab, run: str) -> dict[str, int]:
    """How many of the run's task containers each node holds (found as test_swarm_reference finds them)."""
    prefix = f"envctl-{PROJECT}-{run}-"
    return {swarmlab.node_name(i): sum(1 for c in engine.containers({}) if c.labels.get(TASK_OF, "").startswith(prefix))
            for i, engine in lab.engines.items()}


def warm_the_nodes(lab: swarmlab.Lab, local: Engine) -> tuple[float, int]:
    """Pull every image envctl pushed onto every node that lacks it (as a long-lived cluster has them)."""
    prefix = lab.local_registry + "/"
    refs = [lab.registry + "/" + tag[len(prefix):] for image in local.images({eng.PROJECT: PROJECT})
            for tag in image.get("RepoTags") or [] if tag.startswith(prefix)]
    began = time.monotonic()

    def one_node(engine: Engine) -> int:
        missing = [ref for ref in refs if engine.image_id(ref) is None]
        for ref in missing:
            repository, _, tag = ref.rpartition(":")
            engine.pull(repository, tag)
        return len(missing)

    with ThreadPoolExecutor(len(lab.engines)) as pool:
        pulled = sum(pool.map(one_node, lab.engines.values()))
    return time.monotonic() - began, pulled


class Sides:
    """The two places a run goes, the runs up on each (to take down by id), and what was measured."""

    def __init__(self, lab: swarmlab.Lab, work: Path) -> None:
        self.lab = lab
        self.stacks = {side: copy_stack(work / side) for side in SIDES}
        self.env = {"lab": {**lab.envctl_environment(), "SHOP_PORT": str(free_port())}, "host": {}}
        self.up_runs: list[tuple[str, str]] = []
        self.times: dict[str, list[float]] = {f"{side} {what}": [] for side in SIDES for what in ("up", "down")}
        self.placed: list[dict[str, int]] = []
        self.registry: list[dict[str, int]] = []

    def envctl(self, side: str, run: str, *args: str) -> float:
        env = self.env[side] if side == "lab" else {"SHOP_PORT": str(free_port())}
        return benchmark.envctl("--run", run, *args, cwd=self.stacks[side], env=env)

    def round(self, side: str, run: str, timed: bool) -> None:
        requests_before = registry_requests(self.lab)
        self.up_runs.append((side, run))
        up = self.envctl(side, run, "up")
        if side == "lab":
            placed = placements(self.lab, run)
            print(f"  lab run {run}: tasks per node {placed}", flush=True)
            if timed:
                self.placed.append(placed)
                self.registry.append(dict(registry_requests(self.lab) - requests_before))
        down = self.envctl(side, run, "down", "--no-logs")
        self.up_runs.remove((side, run))
        print(f"  {side}: up {up:.2f} s, down {down:.2f} s{'' if timed else ' (not timed)'}", flush=True)
        if timed:
            self.times[f"{side} up"].append(up)
            self.times[f"{side} down"].append(down)

    def take_down_the_rest(self) -> None:
        """After a failure: the runs this benchmark brought up, each by its id."""
        for side, run in list(self.up_runs):
            try:
                self.envctl(side, run, "down", "--no-logs")
            except SystemExit as exc:
                print(f"taking down {side} run {run} failed: {exc}", file=sys.stderr)


def measure(rounds: int) -> dict:
    for name in FOREIGN:
        os.environ.pop(name, None)
    local = Engine.connect()
    before = {image["Id"] for image in local.images({eng.PROJECT: PROJECT})}
    work = Path(tempfile.mkdtemp(prefix="envctl-bench-swarm-"))
    tag = f"bswarm{os.getpid()}"
    results: dict = {"images there": len(before)}
    sides = None
    with swarmlab.LabLock():
        lab = swarmlab.up()
        try:
            results["lab up"] = lab.timings["up"]
            manager = lab.engines[1]
            results["lab engine"] = {"version": manager.version()["Version"], "driver": manager.info()["Driver"]}
            print(f"swarm lab up in {lab.timings['up']:.2f} s", flush=True)
            sides = Sides(lab, work)
            print("untimed round: builds what is missing, pushes, first pulls ...", flush=True)
            began = time.monotonic()
            for side in SIDES:
                sides.round(side, f"{tag}-{side}-0", timed=False)
            results["first round"] = time.monotonic() - began
            results["built"] = len({i["Id"] for i in local.images({eng.PROJECT: PROJECT})} - before)
            results["warm nodes"], results["pulled"] = warm_the_nodes(lab, local)
            print(f"nodes warmed: {results['pulled']} pulls in {results['warm nodes']:.1f} s", flush=True)
            for round_ in range(1, rounds + 1):
                print(f"round {round_}/{rounds}", flush=True)
                order = SIDES if round_ % 2 else SIDES[::-1]
                for side in order:
                    sides.round(side, f"{tag}-{side}-{round_}", timed=True)
        finally:
            if sides is not None:
                sides.take_down_the_rest()
            results["lab down"] = swarmlab.down(lab.root)
            lab.untag_pushed(local, PROJECT)
            remove_images_since(local, PROJECT, before)
            shutil.rmtree(work, ignore_errors=True)
    results.update(times=sides.times, placed=sides.placed, registry=sides.registry)
    return results


def machine(lab_engine: dict) -> str:
    client = Engine.connect()
    version, info = client.version(), client.info()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}. Host engine: Docker "
            f"{version['Version']} (API {version['ApiVersion']}), storage driver {info['Driver']}; the lab: "
            f"{swarmlab.NODES} dockerd {lab_engine['version']} in namespaces of this machine, storage driver "
            f"{lab_engine['driver']}, one swarm (1 manager), Debian's docker-registry on the host's end of its network")


def per_round(registry: list[dict[str, int]]) -> str:
    """The lab registry's requests in a timed `up`, as medians over the rounds."""
    keys = sorted({k for r in registry for k in r})
    if not keys:
        return "none"
    return ", ".join(f"{statistics.median(r.get(k, 0) for r in registry):g} {k}" for k in keys)


def _requests(registry: list[dict[str, int]], listener: str, methods: tuple[str, ...], kind: str) -> float:
    """Median over the timed rounds of one listener's requests of those methods for manifests or blobs."""
    return statistics.median(sum(n for key, n in r.items() if key.split()[0] == listener
                                 and key.split()[1] in methods and key.split()[2] == kind) for r in registry)


def _lab_up_parts(registry: list[dict[str, int]]) -> str:
    """What a timed `up` on the lab did, in the order it happens, the registry's log deciding the parts it shows."""
    pushes = _requests(registry, "host", ("PUT", "POST", "PATCH"), "blobs") + _requests(registry, "host", ("PUT",),
                                                                                          "manifests")
    node_manifests = _requests(registry, "nodes", ("GET", "HEAD"), "manifests")
    node_blobs = _requests(registry, "nodes", ("GET",), "blobs")
    return ", ".join([
        "a check per image that the registry holds it (" + (f"{pushes:g} uploads" if pushes else "no push")
        + ": every image was pushed in an untimed first round)",
        "the run's overlay network", "each service created at 0 replicas and scaled to 1 in dependency order",
        "Swarm's placement of each task on a node",
        (f"the node asking the registry for the tag again ({node_manifests:g} manifest requests, "
         f"{node_blobs:g} layer downloads: every node was given every image before the timed rounds)"
         if node_manifests else "no pull (every node was given every image before the timed rounds)"),
        "the container's start there"])


def section(results: dict, command: str) -> str:
    t = {k: statistics.median(v) for k, v in results["times"].items()}
    rounds = len(results["times"]["lab up"])
    raw = {k: [round(x, 2) for x in v] for k, v in results["times"].items()}
    lines = [
        BEGIN,
        "## Issue 17: the reference stack on the 3-node swarm lab, beside the host's engine", "",
        f"Date: {results['date']}. Machine: {results['machine']}. Produced by `{command}` (one run, "
        f"the sides interleaved, alternating who goes first; medians of {rounds} rounds).", "",
        "| | swarm lab (3 nodes) | host engine | lab / host |", "| --- | --- | --- | --- |",
        f"| reference stack, warm `envctl up` to all-ready | {t['lab up']:.2f} s | {t['host up']:.2f} s "
        f"| {t['lab up'] / t['host up']:.2f}x |",
        f"| `envctl down --no-logs` | {t['lab down']:.2f} s | {t['host down']:.2f} s "
        f"| {t['lab down'] / t['host down']:.2f}x |", "",
        "What the figures include: the `envctl` command's wall clock, Python start-up included, on a copy of "
        "the reference stack (its own directory, each round a run of its own). On the lab, a warm `up` is: "
        f"{_lab_up_parts(results['registry'])}, and the readiness probes from this machine to the nodes' "
        "addresses. Not included: "
        f"builds, pushes and first pulls (the untimed round: {results['first round']:.1f} s for both sides, "
        f"{results['built']} images built; then {results['pulled']} pulls to warm the nodes in "
        f"{results['warm nodes']:.1f} s), and the lab's own start ({results['lab up']:.1f} s) and teardown "
        f"({results['lab down']:.1f} s).", "",
        f"Per timed lab `up`, the registry saw (medians): {per_round(results['registry'])}. "
        f"Tasks per node, each timed round: {'; '.join(str(p) for p in results['placed'])}.", "",
        f"Raw (seconds): `{json.dumps(raw)}`", "",
        END,
    ]
    return "\n".join(lines) + "\n"


def run(rounds: int, out: Path, command: str) -> dict:
    """Measure, write the section into `out`, and print it."""
    if swarmlab.unavailable():
        raise SystemExit(f"--swarm: {swarmlab.unavailable()}")
    results = measure(rounds)
    results["date"] = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    results["machine"] = machine(results["lab engine"])
    text = section(results, command)
    print(text)
    benchmark.write_section(out, text, BEGIN, END)
    return results
