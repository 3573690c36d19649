"""Before/after: `envctl up` and `down` of the benchmark's 12-service topology, two trees interleaved.

    python bench/compare.py --before REV [--rounds 6] [--boot 0.5]

REV (a commit) is checked out into a temporary worktree and run beside this checkout,
round by round on the same engine, so the machine's drift hits both alike; prints the
medians. The editable install's import hook would load this checkout for both, whatever
PYTHONPATH says, so the "before" CLI is started through a shim that removes that hook.
Removes its runs, the worktree, its temporary directory and the images of the benchmark project.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from benchmark import REPO, clean_images, compiled_like_an_install, envctl, write_topology

SHIM = """import os, runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, os.environ["ENVCTL_TREE"])
import importlib.util
# envctl runs as `python -m envctl` since the packages by stage; before that, envctl.cli
module = "envctl" if importlib.util.find_spec("envctl.__main__") else "envctl.cli"
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def checkout_before(revision: str, work: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """`revision` checked out in WORK/before; the before and after command lines, and the env for both."""
    tree = work / "before"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), revision],
                   check=True, capture_output=True)
    (work / "shim.py").write_text(SHIM)
    compiled_like_an_install(tree)
    compiled_like_an_install(REPO)
    env = {**os.environ, "ENVCTL_TREE": str(tree)}
    return {"before": [sys.executable, str(work / "shim.py")], "after": [sys.executable, "-m", "envctl"]}, env


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--boot", type=float, default=0.0, help="seconds each service takes to listen")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envctl-compare-"))
    tree, root = work / "before", work / "stack"
    clis, env = checkout_before(args.before, work)
    times = {name: {"up": [], "down": []} for name in clis}
    try:
        write_topology(root, args.boot)
        envctl("build", cwd=root)
        for round_ in range(args.rounds):
            for name, cli in clis.items():
                times[name]["up"].append(timed([*cli, "up"], root, env))
                times[name]["down"].append(timed([*cli, "down", "--no-logs"], root, env))
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(
                f"{name} up {t['up'][-1]:.2f} s" for name, t in times.items()), flush=True)
    finally:
        envctl("down", "--all", cwd=root, check=False)
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
        clean_images(docker.from_env())
        shutil.rmtree(work, ignore_errors=True)
    print(f"12 services, boot {args.boot:g} s, medians of {args.rounds} interleaved rounds:")
    for name, t in times.items():
        print(f"  {name:6} ({args.before if name == 'before' else 'this checkout'}): "
              f"up {statistics.median(t['up']):.2f} s, down {statistics.median(t['down']):.2f} s")


if __name__ == "__main__":
    main()
