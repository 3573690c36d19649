"""A fresh CI agent with a warm image cache, beside the cold build, in one run.

    python bench/fresh_agent.py [--out bench/RESULTS.md]

On a copy of the reference stack under a project name of its own (so the reference stack's
images are never touched) and with SHOP_PORT on a free port:
1. cold `envctl up`: every image of the copy removed first, no cache (bootstrap and builds);
2. the cache filled: `envctl build --fill-cache` pushes every image to a local registry
   (Debian's docker-registry on 127.0.0.1, started here, storage in a temporary directory);
3. "fresh agent, warm cache": every image of the copy removed again, `envctl up --cache`.
Target: (3) at most 0.25x of (1). Writes its section into RESULTS.md (between markers), and
removes its images, runs, registry and directories afterwards.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.integration.registries import REGISTRY_BINARY, Registry, free_port  # noqa: E402

PROJECT = "envctl-bench-agent"
BEGIN, END = "<!-- fresh-agent: begin -->", "<!-- fresh-agent: end -->"


def envctl(*args: str, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([str(REPO / ".venv" / "bin" / "envctl"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"envctl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout + result.stderr


def copy_stack(target: Path) -> Path:
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".git", ".venv", ".envctl", "bench", "tests",
                                                                "*.egg-info", "__pycache__"))
    topology = target / "envctl.yaml"
    topology.write_text(re.sub(r"(?m)^name: shop$", f"name: {PROJECT}", topology.read_text()))
    return target


def remove_images(client: docker.DockerClient) -> None:
    for _ in range(4):  # children before parents
        for image in client.images.list(filters={"label": f"envctl.project={PROJECT}"}):
            for tag in image.tags or [image.id]:
                try:
                    client.images.remove(tag)
                except docker.errors.APIError:
                    pass


def built(output: str) -> int:
    match = re.search(r"(\d+) images built\)", output)
    return int(match.group(1)) if match else -1


def measure() -> dict:
    import os

    client = docker.from_env()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="envctl-fresh-agent-") as tmp:
        stack = copy_stack(Path(tmp) / "stack")
        registry = Registry(Path(tmp) / "registry")
        cache = f"{registry.host}/bench"
        env = {**os.environ, "SHOP_PORT": str(free_port())}
        env.pop("ENVCTL_CACHE", None)
        try:
            remove_images(client)
            print("cold up (no images, no cache) ...", flush=True)
            results["cold up"], out = envctl("up", cwd=stack, env=env)
            results["cold built"] = built(out)
            envctl("down", "--no-logs", cwd=stack, env=env)
            print("filling the cache ...", flush=True)
            results["fill"], _ = envctl("build", "--fill-cache", "--cache", cache, cwd=stack, env=env)
            remove_images(client)
            print("fresh agent, warm cache ...", flush=True)
            results["warm cache up"], out = envctl("up", "--cache", cache, cwd=stack, env=env)
            results["warm built"] = built(out)
            envctl("down", "--no-logs", cwd=stack, env=env)
        finally:
            registry.close()
            subprocess.run([str(REPO / ".venv" / "bin" / "envctl"), "down", "--all", "--no-logs"], cwd=stack, env=env,
                           capture_output=True)
            remove_images(client)
    return results


def section(results: dict) -> str:
    ratio = results["warm cache up"] / results["cold up"]
    return "\n".join([
        BEGIN,
        "## Fresh CI agent, warm image cache (a copy of the reference stack)", "",
        "| | `envctl up` | images built | vs cold |", "| --- | --- | --- | --- |",
        f"| cold: no images, no cache | {results['cold up']:.1f} s | {results['cold built']} | 1.00x |",
        f"| fresh agent, warm cache: no images, cache full | {results['warm cache up']:.1f} s "
        f"| {results['warm built']} | {ratio:.2f}x (target <= 0.25x) |", "",
        f"The copy runs under its own project name with its images removed before each `up`; the cache is "
        f"Debian's docker-registry on 127.0.0.1 (filled by `envctl build --fill-cache` in {results['fill']:.1f} s, "
        "not counted). Produced by `python bench/fresh_agent.py` (also part of `bench/benchmark.py`).",
        END, ""])


def write_section(path: Path, text: str) -> None:
    from benchmark import write_section as write  # here: benchmark imports this module

    write(path, text, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if not Path(REGISTRY_BINARY).exists():
        raise SystemExit("docker-registry is not installed; .ci/setup installs it")
    results = measure()
    text = section(results)
    print(text)
    write_section(args.out, text)


if __name__ == "__main__":
    main()
