"""Mock replay latency at a fixed rate: two mocks in containers beside a trivial server, in rounds.

    python bench/mock_replay.py [--rate 1000] [--seconds 5] [--rounds 3] [--out bench/RESULTS.md]
    PYTHONPATH=OTHER_CHECKOUT python bench/mock_replay.py ...   # the same for another tree (before/after)

Copies the reference stack's two recorded APIs (fixtures/) into a topology of its own in a
temporary directory, `envctl up`s it (the mocks only: the image is the mock image users get),
then, each round, puts the same paced open-loop load (bench/mock_load.py) on
  - trivial: a server that answers 202 without looking at the request, on the host: the
    floor of the generator and the machine, the peer of the figures below;
  - email: the email provider's mock, matched on method and path;
  - payment: the payment provider's mock, matched on method, path and a form body;
and prints one JSON line per load with the machine's load average beside it; with --out, the
medians over the rounds go to that file's issue-18 section. `envctl down` at the end, whatever
happened; the images stay (project envctl-mockbench) for the next run. Traffic to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import mock_load  # noqa: E402 - the load generator beside this file
from benchmark import write_section  # noqa: E402

BEGIN, END = "<!-- issue-18: begin -->", "<!-- issue-18: end -->"

REPO = Path(__file__).resolve().parent.parent
TOPOLOGY = """\
name: envctl-mockbench
bases:
  os:
    bootstrap: {distro: debian, suite: bookworm, packages: [ca-certificates, python3]}
mocks:
  email-provider:
    cassettes: fixtures/email-provider
    upstream: https://api.email.example
    match_on: [method, path]
  payment-provider:
    cassettes: fixtures/payment-provider
    upstream: https://api.payments.example
    match_on: [method, path, body]
"""
LOADS = {  # name -> (mock, path, Content-Type, body)
    "email": ("email-provider", "/v3/mail/send", "application/json",
              '{"personalizations": [{"to": [{"email": "customer@example.com"}]}], "subject": "Your order"}'),
    "payment": ("payment-provider", "/v1/charges", "application/x-www-form-urlencoded",
                "amount=1250&currency=eur&source=tok_visa"),
}


def envctl(directory: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "envctl", *args], cwd=directory, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"envctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def load_average() -> float:
    return os.getloadavg()[0]


def measure(name: str, url: str, content_type: str | None, body: str | None, args: argparse.Namespace) -> dict:
    before = load_average()
    result = mock_load.load(url, args.rate, args.seconds, args.connections, "POST",
                            body.encode() if body else None, content_type)
    result = {"load": name, **result, "load_average_before": before, "load_average_after": load_average()}
    print(json.dumps(result), flush=True)
    return result


def section(results: list[dict], tree: str, args: argparse.Namespace) -> str:
    """The medians over the rounds, per load, as RESULTS.md's issue-18 section."""
    lines = [BEGIN, "## Issue 18: mock replay at a fixed rate", "",
             f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores. envctl from {tree}. "
             f"Produced by `python bench/mock_replay.py --rounds {args.rounds} --seconds {args.seconds:g}`: "
             f"{args.rate:.0f} requests/s offered for {args.seconds:g} s over {args.connections} keep-alive "
             "connections on 127.0.0.1, open loop; medians of the rounds (worst round in brackets).", "",
             "| load | achieved | p50 | p99 | p99 from when due | errors | load average |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in ("trivial", *LOADS):
        rows = [r for r in results if r["load"] == name]
        median = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
        worst = lambda key: max(r[key] for r in rows)  # noqa: E731
        lines.append(f"| {name} | {median('achieved_rps'):.0f}/s | {median('p50_ms'):.2f} ms "
                     f"| {median('p99_ms'):.2f} ms ({worst('p99_ms'):.2f}) "
                     f"| {median('p99_from_due_ms'):.2f} ms ({worst('p99_from_due_ms'):.2f}) "
                     f"| {sum(r['errors'] for r in rows)} | {median('load_average_before'):.2f} |")
    lines += ["", "trivial: a server on the host that answers 202 without reading the request (the generator's and "
              "the machine's floor); email: the email provider's mock, matched on method and path; payment: the "
              "payment provider's, matched on method, path and form body (one body, repeated).", END, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, help="write the medians to this file's issue-18 section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envctl-mockbench-") as temp:
        directory = Path(temp)
        (directory / "envctl.yaml").write_text(TOPOLOGY)
        shutil.copytree(REPO / "fixtures", directory / "fixtures")
        tree = subprocess.run([sys.executable, "-c", "import envctl, pathlib; print(pathlib.Path(envctl.__file__)"
                               ".parent.parent)"], cwd=directory, capture_output=True, text=True).stdout.strip()
        print(json.dumps({"envctl": tree}), flush=True)
        envctl(directory, "up")
        trivial, trivial_url = mock_load.trivial_server()
        results = []
        try:
            urls = {name: f"http://{envctl(directory, 'port', mock).strip()}{path}"
                    for name, (mock, path, _, _) in LOADS.items()}
            for _ in range(args.rounds):
                results.append(measure("trivial", trivial_url, "application/json", LOADS["email"][3], args))
                for name, (_, _, content_type, body) in LOADS.items():
                    results.append(measure(name, urls[name], content_type, body, args))
        finally:
            trivial.terminate()
            trivial.wait(5)
            envctl(directory, "down", "--no-logs")
    if args.out:
        write_section(args.out, section(results, tree, args), BEGIN, END)


if __name__ == "__main__":
    main()
