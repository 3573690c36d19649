"""Mock replay latency at a fixed rate: two mocks in containers beside a trivial server, in rounds.

    python bench/mock_replay.py [--rate 1000] [--seconds 5] [--rounds 3]

Copies the reference stack's two recorded APIs (fixtures/) into a topology of its own in a
temporary directory, `envctl up`s it (the mocks only: the image is the mock image users get),
then, each round, puts the same paced open-loop load (bench/mock_load.py) on
  - trivial: a server that answers 202 without looking at the request, on the host: the
    floor of the generator and the machine, the peer of the figures below;
  - email: the email provider's mock, matched on method and path;
  - payment: the payment provider's mock, matched on method, path and a form body;
and prints one JSON line per load with the machine's load average beside it. `envctl down`
at the end, whatever happened. Traffic to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import mock_load  # noqa: E402 - the load generator beside this file

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


def measure(name: str, url: str, content_type: str | None, body: str | None, args: argparse.Namespace) -> None:
    before = load_average()
    result = mock_load.load(url, args.rate, args.seconds, args.connections, "POST",
                            body.encode() if body else None, content_type)
    print(json.dumps({"load": name, **result, "load_average_before": before, "load_average_after": load_average()}),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envctl-mockbench-") as temp:
        directory = Path(temp)
        (directory / "envctl.yaml").write_text(TOPOLOGY)
        shutil.copytree(REPO / "fixtures", directory / "fixtures")
        envctl(directory, "up")
        trivial, trivial_url = mock_load.trivial_server()
        try:
            urls = {name: f"http://{envctl(directory, 'port', mock).strip()}{path}"
                    for name, (mock, path, _, _) in LOADS.items()}
            for _ in range(args.rounds):
                measure("trivial", trivial_url, "application/json", LOADS["email"][3], args)
                for name, (_, _, content_type, body) in LOADS.items():
                    measure(name, urls[name], content_type, body, args)
        finally:
            trivial.terminate()
            trivial.wait(5)
            envctl(directory, "down", "--no-logs")


if __name__ == "__main__":
    main()
