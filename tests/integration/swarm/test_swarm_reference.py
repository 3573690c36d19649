"""The reference shop on the 3-node lab: 18 services and mocks across the nodes, a purchase through
the gateway at its node's address, and nothing left on any node after `down`."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from envctl.backend import engine as eng

from .. import swarmlab
from ..conftest import envctl, free_port
from ..test_reference_stack import REPO, Client
from .test_swarm_backend import current_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def shop_on_lab(lab: swarmlab.Lab, run: str) -> dict[str, list[str]]:
    labels = {eng.PROJECT: "shop", eng.RUN: run}
    left = {"services": [s["Spec"]["Name"] for s in lab.engines[1].services(labels)],
            "networks": [n["Name"] for n in lab.engines[1].networks(labels)]}
    for index, engine in lab.engines.items():
        left[f"n{index} containers"] = [c.name for c in engine.containers({})
                                        if c.labels.get("envctl.swarm-service", "").startswith(f"envctl-shop-{run}")]
        left[f"n{index} volumes"] = [v["Name"] for v in engine.volumes(labels)]
    return {k: v for k, v in left.items() if v}


def test_the_reference_shop_runs_across_the_lab(swarm_lab: swarmlab.Lab, lab_env: dict[str, str],
                                                tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    for part in ("envctl.yaml", "services", "fixtures"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, shop / part, ignore=shutil.ignore_patterns("__pycache__", ".envctl"))
        else:
            shutil.copy(source, shop / part)
    env = {**lab_env, "SHOP_PORT": str(free_port())}
    began = time.monotonic()
    envctl(["up"], shop, env)
    print(f"\nreference stack up on the lab in {time.monotonic() - began:.2f}s")
    run = current_run(shop)
    try:
        rows = envctl(["status"], shop, {**env, "COLUMNS": "250"}).stdout
        nodes = {cell for line in rows.splitlines() for cell in line.split() if cell.startswith("envsw-n")}
        assert len(nodes) > 1, rows
        print(f"nodes used: {sorted(nodes)}")
        gateway = envctl(["port", "gateway"], shop, env).stdout.strip()
        shopper = Client(f"http://{gateway}")
        shopper.sign_up_and_log_in("ada@example.com")
        assert shopper("POST", "/cart/items", json={"sku": "mug", "qty": 1}).status_code == 201
        order = shopper("POST", "/orders", json={"payment_source": "tok_visa"})
        assert order.status_code == 201 and order.json()["status"] == "paid", order.text
    finally:
        began = time.monotonic()
        envctl(["down"], shop, env, check=False)
        print(f"reference stack down in {time.monotonic() - began:.2f}s")
    assert shop_on_lab(swarm_lab, run) == {}
