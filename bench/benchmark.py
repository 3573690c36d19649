"""envctl's benchmark, beside docker-compose and the engine's floor, in one run on one engine.

    python bench/benchmark.py [--rounds 3] [--no-cold] [--out bench/RESULTS.md]
    python bench/benchmark.py --issue19 [--before 2c5c619] [--cold-rounds 2] [--rounds 3]
    flock /tmp/envctl-integration.lock python bench/benchmark.py --swarm [--rounds 3]

With --issue19 it measures issue 19's "Done means" instead, this checkout against BEFORE
(bench/issue19.py): the reference stack's cold `up` on fresh private engines, a one-file
rebuild, and the 12-service warm `up` beside docker-compose; it writes RESULTS.md's issue-19
section and docs/cold-before.svg, docs/cold-after.svg.

With --swarm it measures issue 17's: the reference stack's warm `up` and `down` on the 3-node
swarm lab (tests/integration/swarmlab.py) beside the host's engine, interleaved
(bench/swarm_reference.py); it writes RESULTS.md's issue-17 section. Root, and the shared
integration lock held, as the integration tests are run.

Measures (medians over the rounds, and ratios):
- warm `up` to all-ready of a 12-service topology in four dependency levels (HTTP servers
  with a readiness check): envctl, envctl with its start gate off (ENVCTL_START_GATE=0: the
  before/after of the gate), docker-compose (depends_on: service_healthy, 500 ms
  healthchecks, the same images), and the floor: the same containers created and started in
  parallel with the Docker SDK, no readiness logic;
- the same with servers that take 0.5 s to listen, as booting apps do (no floor there);
- `down` of that stack with envctl and docker-compose;
- a no-op `envctl build` of the reference stack's images, and a rebuild after one file changed;
- the reference stack's cold `up` (its images removed first) and warm `up`;
- a fresh CI agent with a warm image cache: a copy of the reference stack's `up` with none of
  its images and the cache full, beside its cold build (bench/fresh_agent.py);
- a recorded-HTTP mock's p50/p99 latency at 1,000 requests/s on 127.0.0.1, beside a trivial server's.

Installs Debian's docker-compose if it is missing. Removes every container, network and
volume it starts, and the images of its own 12-service project.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import docker

import fresh_agent
import mock_load

REPO = Path(__file__).resolve().parents[1]
PROJECT = "envctl-bench"
LEVELS = 4
PER_LEVEL = 3
SERVER = '''"""A small HTTP service: ready when it answers /healthz (after BOOT_SECONDS, like an app booting)."""
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


time.sleep(float(os.environ.get("BOOT_SECONDS", "0")))
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
'''
SLOW_BOOT = 0.5  # seconds: the second variant's services take this long to listen
HEALTH = ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=1)"]


GATE_OFF = {"ENVCTL_START_GATE": "0"}  # envctl's start gate off: each service starts once its dependencies are ready


def compiled_like_an_install(tree: Path) -> None:
    """envctl's bytecode written once, as an install has it, and kept for every later command.

    With PYTHONDONTWRITEBYTECODE set (as in this machine's sessions), an editable install
    compiles each of its ~80 modules on every command, about 0.3 s of CPU per `up` (and
    again in the reaper it starts), which docker-compose, installed with its bytecode, never
    pays: not a cost a user's envctl has."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "envctl")], check=True)


def envctl(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> float:
    """Run the envctl CLI as a user would; return its wall time."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "envctl", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise SystemExit(f"envctl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def names() -> list[list[str]]:
    return [[f"l{level}s{i}" for i in range(PER_LEVEL)] for level in range(LEVELS)]


def write_topology(root: Path, boot: float = 0.0) -> None:
    """The 12-service topology: each level depends on every service of the level below."""
    (root / "app").mkdir(parents=True)
    (root / "app" / "server.py").write_text(SERVER)
    (root / "app" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY server.py /app/server.py\n")
    lines = [f"name: {PROJECT}", "bases:", "  os:",
             "    bootstrap: {distro: debian, suite: bookworm, packages: [python3, ca-certificates]}",
             "services:"]
    levels = names()
    for level, services in enumerate(levels):
        for name in services:
            lines += [f"  {name}:", "    build: app", "    base: os", "    command: [python3, /app/server.py]",
                      '    ports: ["8000"]', "    probe: {http: /healthz, port: 8000}",
                      f'    environment: {{BOOT_SECONDS: "{boot:g}"}}']
            if level:
                lines.append(f"    depends_on: [{', '.join(levels[level - 1])}]")
    (root / "envctl.yaml").write_text("\n".join(lines) + "\n")


def write_compose(root: Path, image: str, boot: float = 0.0) -> None:
    """The same stack for docker-compose, on the image envctl built."""
    services = {}
    levels = names()
    for level, group in enumerate(levels):
        for name in group:
            service = {
                "image": image, "command": ["python3", "/app/server.py"], "init": True,
                "environment": {"BOOT_SECONDS": f"{boot:g}"},
                "ports": ["127.0.0.1::8000"],
                "healthcheck": {"test": HEALTH, "interval": "500ms", "timeout": "2s", "retries": 60},
            }
            if level:
                service["depends_on"] = {dep: {"condition": "service_healthy"} for dep in levels[level - 1]}
            services[name] = service
    (root / "docker-compose.yml").write_text(json.dumps({"version": "2.4", "services": services}, indent=1))


def compose(root: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(["docker-compose", "-p", "envctlbench", *args], cwd=root, check=True, capture_output=True)
    return time.perf_counter() - started


def compose_up_to_healthy(root: Path, client: docker.DockerClient) -> float:
    """`up -d` returns once the last level is started; all-healthy is when every healthcheck passes."""
    started = time.perf_counter()
    compose(root, "up", "-d")
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        containers = client.containers.list(filters={"label": "com.docker.compose.project=envctlbench"})
        states = [c.attrs["State"].get("Health", {}).get("Status") for c in containers]
        if len(states) == LEVELS * PER_LEVEL and all(s == "healthy" for s in states):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise SystemExit("docker-compose: not all healthy after 120 s")


def floor_up(client: docker.DockerClient, image: str) -> tuple[float, float]:
    """The engine's floor: create and start the 12 containers in parallel, no readiness logic."""
    network = client.networks.create("envctl-bench-floor", labels={"envctl.bench": "floor"})
    started = time.perf_counter()

    def one(name: str):
        container = client.api.create_container(
            image, command=["python3", "/app/server.py"], name=f"envctl-bench-floor-{name}",
            labels={"envctl.bench": "floor"}, ports=[8000],
            host_config=client.api.create_host_config(init=True, network_mode=network.name,
                                                      port_bindings={8000: [("127.0.0.1",)]}))
        client.api.start(container["Id"])
        return container["Id"]

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(one, [n for group in names() for n in group]))
        elapsed = time.perf_counter() - started
    finally:  # by label: an interrupted round leaves nothing behind for the next to trip on
        started = time.perf_counter()
        left = client.api.containers(all=True, filters={"label": "envctl.bench=floor"})
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(lambda c: client.api.remove_container(c["Id"], force=True), left))
        network.remove()
    return elapsed, time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_twelve(rounds: int, client: docker.DockerClient, results: dict, boot: float = 0.0,
                 key: str = "twelve", floor: bool = True) -> None:
    """envctl (start gate on and off), docker-compose and the floor, interleaved round by round."""
    root = Path(tempfile.mkdtemp(prefix="envctl-bench-"))
    write_topology(root, boot)
    print(f"building the 12-service topology's images (boot {boot:g} s) ...", flush=True)
    envctl("build", cwd=root)
    image = next(t for i in client.images.list(filters={"label": f"envctl.project={PROJECT}"})
                 for t in i.tags if t.startswith(f"{PROJECT}/l0s0:"))
    write_compose(root, image, boot)
    kinds = ["envctl up", "envctl down", "envctl up, gate off", "compose up", "compose down"]
    times: dict[str, list[float]] = {k: [] for k in kinds + (["floor up", "floor down"] if floor else [])}
    try:
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}", flush=True)
            times["envctl up"].append(envctl("up", cwd=root))
            times["envctl down"].append(envctl("down", "--no-logs", cwd=root))
            times["envctl up, gate off"].append(envctl("up", cwd=root, env=GATE_OFF))
            envctl("down", "--no-logs", cwd=root)
            times["compose up"].append(compose_up_to_healthy(root, client))
            times["compose down"].append(compose(root, "down"))
            if floor:
                up, down = floor_up(client, image)
                times["floor up"].append(up)
                times["floor down"].append(down)
    finally:
        envctl("down", "--all", cwd=root, check=False)
        subprocess.run(["docker-compose", "-p", "envctlbench", "down"], cwd=root, capture_output=True)
    results[key] = {k: median(v) for k, v in times.items()}
    results[f"{key}_raw"] = times


def bench_builds(rounds: int, results: dict) -> None:
    root = Path(tempfile.mkdtemp(prefix="envctl-bench-shop-"))
    for part in ("envctl.yaml", "services", "fixtures"):
        source = REPO / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / part)
    print("building the reference stack's images ...", flush=True)
    envctl("build", cwd=root)
    noop = [envctl("build", cwd=root) for _ in range(rounds)]
    client = docker.from_env()
    before = {i.id for i in client.images.list(filters={"label": "envctl.project=shop"})}
    app = root / "services" / "users" / "app.py"
    changed = []
    for round_ in range(rounds):
        app.write_text(app.read_text() + f"# change {round_}\n")
        changed.append(envctl("build", cwd=root))
    for image in client.images.list(filters={"label": "envctl.project=shop"}):
        if image.id not in before:  # the changed users images: this benchmark's own
            client.images.remove(image.id, force=True)
    results["builds"] = {"noop": median(noop), "one_file": median(changed), "images": len(before)}


def bench_reference(rounds: int, cold: bool, client: docker.DockerClient, results: dict) -> None:
    env: dict[str, str] = {}
    out = {}
    if cold:
        print("reference stack: cold up (removing its images first) ...", flush=True)
        for _ in range(4):  # children before parents
            for image in client.images.list(filters={"label": "envctl.project=shop"}):
                for tag in image.tags:
                    try:
                        client.images.remove(tag)
                    except docker.errors.APIError:
                        pass
        out["cold up"] = envctl("up", cwd=REPO, env=env)
        envctl("down", "--no-logs", cwd=REPO, env=env)
    warm, down = [], []
    for _ in range(rounds):
        warm.append(envctl("up", cwd=REPO, env=env))
        down.append(envctl("down", "--no-logs", cwd=REPO, env=env))
    out["warm up"] = median(warm)
    out["down"] = median(down)
    results["reference"] = out


def bench_mock(results: dict, rate: float = 1000, seconds: float = 5, connections: int = 8) -> None:
    """The email provider's mock at a fixed rate (bench/mock_load.py, open loop) beside a trivial server."""
    envctl("up", "email-provider", cwd=REPO)
    trivial, trivial_url = mock_load.trivial_server()
    try:
        port = subprocess.run([sys.executable, "-m", "envctl", "port", "email-provider"], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip().split(":")[1]
        body = json.dumps({"personalizations": [{"to": [{"email": "a@example.com"}]}]}).encode()
        peer = mock_load.load(trivial_url, rate, seconds, connections, "POST", body)
        mock = mock_load.load(f"http://127.0.0.1:{port}/v3/mail/send", rate, seconds, connections, "POST", body)
        results["mock"] = {**mock, "rate": rate, "connections": connections, "trivial": peer}
    finally:
        trivial.terminate()
        trivial.wait(5)
        envctl("down", "--no-logs", cwd=REPO, check=False)


def ensure_compose() -> None:
    if shutil.which("docker-compose"):
        return
    print("installing Debian's docker-compose ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "docker-compose"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def clean_images(client: docker.DockerClient) -> None:
    for _ in range(3):
        for image in client.images.list(filters={"label": f"envctl.project={PROJECT}"}):
            for tag in image.tags:
                try:
                    client.images.remove(tag)
                except docker.errors.APIError:
                    pass


def write_results(path: Path, results: dict, rounds: int) -> None:
    client = docker.from_env()
    version = client.version()
    info = client.info()
    twelve, slow = results["twelve"], results["slow"]
    b, ref, mock = results["builds"], results["reference"], results["mock"]
    ratio = lambda a, c: f"{a / c:.2f}x"  # noqa: E731
    lines = [
        "# envctl benchmark results", "",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}. "
        f"Engine: Docker {version['Version']} (API {version['ApiVersion']}), storage driver {info['Driver']}. "
        f"docker-compose {subprocess.run(['docker-compose', 'version', '--short'], capture_output=True, text=True).stdout.strip()}. "
        f"Medians of {rounds} rounds; produced by `python bench/benchmark.py`.", "",
        "## 12 services in four dependency levels, warm (images present)", "",
        "| | envctl | docker-compose | engine floor | envctl / compose | envctl / floor | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| up to all-ready | {twelve['envctl up']:.2f} s | {twelve['compose up']:.2f} s | {twelve['floor up']:.2f} s "
        f"| {ratio(twelve['envctl up'], twelve['compose up'])} | {ratio(twelve['envctl up'], twelve['floor up'])} "
        f"| <= 0.4x compose, <= 1.2x floor |",
        f"| down | {twelve['envctl down']:.2f} s | {twelve['compose down']:.2f} s | {twelve['floor down']:.2f} s "
        f"| {ratio(twelve['envctl down'], twelve['compose down'])} | {ratio(twelve['envctl down'], twelve['floor down'])} "
        f"| <= 0.6x compose |",
        f"| up, start gate off | {twelve['envctl up, gate off']:.2f} s | | "
        f"| {ratio(twelve['envctl up, gate off'], twelve['compose up'])} "
        f"| {ratio(twelve['envctl up, gate off'], twelve['floor up'])} | (the gate's share) |", "",
        "envctl's times are the `envctl up` / `envctl down --no-logs` commands, wall clock, Python start-up "
        "included. compose's `up` is `docker-compose up -d` then polling until every healthcheck is healthy "
        "(500 ms interval); the floor creates and starts the same 12 containers in parallel with the Docker SDK "
        "and waits for nothing. \"Gate off\" is `envctl up` with `ENVCTL_START_GATE=0`: each container is "
        "started only once its dependencies are ready (this version, without its start gate).", "",
        f"## The same 12 services, each taking {SLOW_BOOT:g} s to listen (like an app booting)", "",
        "| | envctl | envctl, gate off | docker-compose | envctl / compose | gate on / off |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| up to all-ready | {slow['envctl up']:.2f} s | {slow['envctl up, gate off']:.2f} s "
        f"| {slow['compose up']:.2f} s | {ratio(slow['envctl up'], slow['compose up'])} "
        f"| {ratio(slow['envctl up'], slow['envctl up, gate off'])} |", "",
        "## Builds (the reference stack)", "",
        f"- no-op `envctl build` of {b['images']} images: {b['noop']:.2f} s (target: under 1 s for 16 images)",
        f"- one file changed (`services/users/app.py`), `envctl build`: {b['one_file']:.2f} s", "",
        "## The reference stack (18 containers)", "",
    ]
    if "cold up" in ref:
        lines.append(f"- cold `envctl up` (its images removed first; bootstrap and 19 builds): {ref['cold up']:.1f} s")
    lines += [f"- warm `envctl up`: {ref['warm up']:.2f} s", f"- `envctl down --no-logs`: {ref['down']:.2f} s", "",
              "## Recorded-HTTP mock replay", "",
              f"- {mock['requests']} requests offered at {mock['rate']:.0f}/s over {mock['connections']} keep-alive "
              f"connections on 127.0.0.1 (bench/mock_load.py, open loop): {mock['achieved_rps']} requests/s, "
              f"p50 {mock['p50_ms']:.2f} ms, p99 {mock['p99_ms']:.2f} ms, p99 from when due "
              f"{mock['p99_from_due_ms']:.2f} ms, {mock['errors']} errors (target: p99 < 10 ms at 1,000 requests/s)",
              f"- the same load on a trivial server (answers without reading the request; the generator's and the "
              f"machine's floor): p50 {mock['trivial']['p50_ms']:.2f} ms, p99 {mock['trivial']['p99_ms']:.2f} ms", "",
              "Raw 12-service timings (seconds): `" + json.dumps({k: [round(x, 2) for x in v]
                                                                 for k, v in results["twelve_raw"].items()}) + "`", "",
              *([fresh_agent.section(results["fresh agent"])] if "fresh agent" in results else []),
              f"Raw timings with {SLOW_BOOT:g} s boots: `" + json.dumps({k: [round(x, 2) for x in v]
                                                                       for k, v in results["slow_raw"].items()}) + "`",
              ""]
    text = "\n".join(lines)
    path.write_text(text + _kept_section(path))
    print(text)


KEPT = ("issue-19", "issue-17", "issue-18")  # sections other modes write (--swarm, --issue19, mock_replay.py)


def _kept_section(path: Path) -> str:
    """The sections other modes wrote, kept when the rest of the file is rewritten."""
    current = path.read_text() if path.exists() else ""
    kept = ""
    for name in KEPT:
        begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
        if begin in current and end in current:
            kept += "\n" + begin + current.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    return kept


def write_section(path: Path, text: str, begin: str, end: str) -> None:
    """Put `text` (which starts with `begin` and ends with `end`) in place of that section, or at the end."""
    current = path.read_text() if path.exists() else ""
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + text.rstrip("\n") + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip the reference stack's cold up")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--issue19", action="store_true", help="issue 19's before/after figures (bench/issue19.py)")
    parser.add_argument("--swarm", action="store_true",
                        help="issue 17's figures: the reference stack on the swarm lab beside the host's engine "
                        "(bench/swarm_reference.py)")
    parser.add_argument("--before", default="2c5c619", help="with --issue19: the commit to compare with")
    parser.add_argument("--cold-rounds", type=int, default=2, help="with --issue19: cold ups per side")
    parser.add_argument("--warm-on", choices=("private", "host"), default="private",
                        help="with --issue19: the 12-service warm rounds on a private engine, or the host's (locked)")
    args = parser.parse_args()
    compiled_like_an_install(REPO)
    if args.issue19:
        import issue19  # imports this module
        issue19.run(args.before, args.cold_rounds, args.rounds, args.out, "python bench/benchmark.py --issue19 "
                    f"--before {args.before} --cold-rounds {args.cold_rounds} --rounds {args.rounds} "
                    f"--warm-on {args.warm_on}", args.warm_on)
        return
    if args.swarm:
        import swarm_reference  # imports this module
        swarm_reference.run(args.rounds, args.out, "flock /tmp/envctl-integration.lock python bench/benchmark.py "
                            f"--swarm --rounds {args.rounds}")
        return
    ensure_compose()
    client = docker.from_env()
    results: dict = {}
    try:
        bench_twelve(args.rounds, client, results)
        bench_twelve(args.rounds, client, results, boot=SLOW_BOOT, key="slow", floor=False)
        bench_builds(args.rounds, results)
        bench_reference(args.rounds, not args.no_cold, client, results)
        if not args.no_cold:
            results["fresh agent"] = fresh_agent.measure()
        bench_mock(results)
    finally:
        clean_images(client)
    write_results(args.out, results, args.rounds)


if __name__ == "__main__":
    main()
