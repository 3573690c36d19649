"""What one container's options cost this engine: 12 containers created and started, per variant.

    flock /tmp/envctl-integration.lock python bench/container_costs.py IMAGE [--rounds 5] [--parallel 2]

Each variant changes one thing from what envctl's `up` asks for a held service (the start
gate's shell, stdin kept open and released by an attach, an init, the host gateway's name,
envctl's labels, a port published on 127.0.0.1, the service's alias on the run's network).
The variants are interleaved round by round; the figures are medians, and the difference
from the full variant per container. The containers and networks carry the label
envctl.bench=container-costs and are removed after each variant.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import docker

LABEL = {"envctl.bench": "container-costs"}
ENVCTL_LABELS = {f"envctl.{k}": v for k, v in {
    "config-hash": "1c55736e0685f065", "input-hash": "37eac1a3ccd18e0f", "kind": "service", "managed": "true",
    "name": "x", "owner": "vm/1/1.5", "platform": "linux/amd64", "project": "container-costs", "run": "abcdef",
    "service": "x", "state": "/tmp/x/.envctl/runs/abcdef", "held": "true"}.items()}
GATE = ["/bin/sh", "-c", 'IFS= read -r word; [ "$word" = go ] || exit 125; exec "$@" </dev/null', "envctl-gate"]
COMMAND = ["python3", "-c", "import time; time.sleep(600)"]
FULL = {"gate": True, "init": True, "host_gateway": True, "labels": True, "port": True, "alias": True}
VARIANTS = {
    "full (as envctl, held)": {},
    "no gate (plain start, no stdin, no attach)": {"gate": False},
    "no init": {"init": False},
    "no host-gateway extra host": {"host_gateway": False},
    "no envctl labels": {"labels": False},
    "no published port": {"port": False},
    "no network alias": {"alias": False},
}
COUNT = 12


def one(client: docker.APIClient, image: str, network: str, name: str, o: dict) -> float:
    """Create and start one container (and release it, if held); returns the release's time."""
    host_config = client.create_host_config(
        init=o["init"], network_mode=network,
        extra_hosts={"host.docker.internal": "host-gateway"} if o["host_gateway"] else None,
        port_bindings={8000: [("127.0.0.1",)]} if o["port"] else None)
    networking = client.create_networking_config(
        {network: client.create_endpoint_config(aliases=[name] if o["alias"] else None)})
    config = client.create_container_config(
        image, command=COMMAND, entrypoint=GATE if o["gate"] else None,
        labels={**LABEL, **(ENVCTL_LABELS if o["labels"] else {})}, ports=[8000] if o["port"] else None,
        host_config=host_config, networking_config=networking, stdin_open=o["gate"], detach=True, stop_timeout=2)
    config["StdinOnce"] = o["gate"]
    cid = client.create_container_from_config(config, name=name)["Id"]
    client.start(cid)
    if not o["gate"]:
        return 0.0
    started = time.perf_counter()
    response = client.attach_socket(cid, params={"stdin": 1, "stream": 1})
    sock = getattr(response, "_sock", response)
    sock.sendall(b"go\n")
    sock.shutdown(socket.SHUT_WR)
    response.close()
    sock.close()
    return time.perf_counter() - started


def variant(client: docker.APIClient, image: str, key: str, changes: dict, parallel: int) -> tuple[float, float]:
    options = {**FULL, **changes}
    network = client.create_network(f"envctl-costs-{abs(hash(key)) % 10**6}", labels=LABEL)["Id"]
    names = [f"envctl-costs-{i}" for i in range(COUNT)]
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            releases = list(pool.map(lambda n: one(client, image, network, n, options), names))
        elapsed = time.perf_counter() - started
    finally:  # an interrupted round leaves nothing behind for the next to trip on
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda n: _remove(client, n), names))
        client.remove_network(network)
    return elapsed, sum(releases) / COUNT


def _remove(client: docker.APIClient, name: str) -> None:
    try:
        client.remove_container(name, force=True)
    except docker.errors.NotFound:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    client = docker.APIClient(timeout=120)
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    releases: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for round_ in range(args.rounds):
        keys = list(VARIANTS) if round_ % 2 == 0 else list(VARIANTS)[::-1]
        for key in keys:
            elapsed, release = variant(client, args.image, key, VARIANTS[key], args.parallel)
            times[key].append(elapsed)
            releases[key].append(release)
        print(f"round {round_ + 1}: " + ", ".join(f"{times[k][-1]:.2f}" for k in VARIANTS), flush=True)
    full = statistics.median(times["full (as envctl, held)"])
    print(f"\n{COUNT} containers created and started, {args.parallel} at a time, medians of {args.rounds} rounds:")
    for key in VARIANTS:
        med = statistics.median(times[key])
        release = statistics.median(releases[key]) * 1000
        print(f"  {key:45s} {med:5.2f} s  ({(med - full) / COUNT * 1000:+6.0f} ms per container vs full)"
              + (f"  release by attach {release:.0f} ms" if release else ""))


if __name__ == "__main__":
    main()
