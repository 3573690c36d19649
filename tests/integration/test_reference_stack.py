"""The reference shop, end to end on the real engine: the user flow through the gateway.

The stack comes from envctl's own pytest plugin: under `envctl ci` (jenkins/stage.sh, and so
.ci/run) the one the stage brought up, else one the plugin starts and stops.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from envctl.backend import engine as eng
from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.images.builder import ImageBuilder
from envctl.stack import Stack
from envctl.topology import Topology, load_topology
from tests.integration.conftest import free_port, remove_images_since
from tests.integration.exposure import assert_loopback_only, assert_no_docker_socket

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def shop_images(engine: Engine) -> Iterator[None]:
    """Images the module builds for the shop are removed afterwards; ones that were there stay."""
    before = {image["Id"] for image in engine.images({eng.PROJECT: "shop"})}
    yield
    remove_images_since(engine, "shop", before)


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("shop")
    for part in ("envctl.yaml", "services", "fixtures"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / part)
    return target


@pytest.fixture(scope="module")
def shop_env() -> dict[str, str]:
    return {"SHOP_PORT": str(free_port()), "PATH": os.environ["PATH"]}


@pytest.fixture(scope="module")
def shop(envctl_stack: Stack) -> Topology:
    """The shop, from the plugin: the stack 'envctl ci' started, or one the plugin starts."""
    if envctl_stack.topology.name != "shop":
        pytest.skip("these tests need the reference stack (envctl.yaml at the repository root)")
    return envctl_stack.topology


@pytest.fixture(scope="module")
def gateway(envctl_stack: Stack) -> str:
    return envctl_stack.url("gateway")


def run_resources_of(engine: Engine, run: str) -> dict[str, list[str]]:
    labels = {eng.PROJECT: "shop", eng.RUN: run}
    return {"containers": [c.name for c in engine.containers(labels)],
            "networks": [n["Name"] for n in engine.networks(labels)],
            "volumes": [v["Name"] for v in engine.volumes(labels)]}


class Client:
    """A shopper talking to the gateway's published port."""

    def __init__(self, gateway: str) -> None:
        self.base = f"{gateway}/api"
        self.session = requests.Session()
        self.session.trust_env = False

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=20, **kwargs)

    def sign_up_and_log_in(self, email: str) -> None:
        assert self("POST", "/signup", json={"email": email, "password": "correct-horse", "name": "Ada"}).status_code == 201
        login = self("POST", "/login", json={"email": email, "password": "correct-horse"})
        assert login.status_code == 200
        self.session.headers["Authorization"] = f"Bearer {login.json()['token']}"

    def stock(self, sku: str) -> int:
        return self("GET", f"/stock/{sku}").json()["available"]


def wait_for(predicate, seconds: float = 30.0, step: float = 0.2):
    """Poll a bounded number of times for something asynchronous (the worker's email)."""
    for _ in range(int(seconds / step)):
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()




def test_the_whole_shop_is_ready_with_host_ports(shop: Topology, envctl_stack: Stack) -> None:
    rows = envctl_stack.status()
    assert len(rows) == 18 and all(row.ready for row in rows)
    assert all(row.ports for row in rows if row.service != "worker")


def test_the_shop_exposes_only_loopback_ports_and_no_docker_socket(shop: Topology, envctl_stack: Stack,
                                                                     engine: Engine) -> None:
    assert assert_loopback_only(engine, "shop", envctl_stack.run) >= 17
    assert assert_no_docker_socket(engine, "shop", envctl_stack.run) == 18


def test_sign_up_browse_buy_and_see_it_in_reports(shop: Topology, gateway: str, envctl_stack: Stack) -> None:
    shopper = Client(gateway)
    shopper.sign_up_and_log_in("ada@example.com")
    products = shopper("GET", "/products").json()["products"]
    assert {p["sku"] for p in products} >= {"mug", "teapot"}
    assert [hit["sku"] for hit in shopper("GET", "/search", params={"q": "mug"}).json()["results"]] == ["mug"]
    before = shopper.stock("mug")
    emails_before = sum(p["count"] for p in envctl_stack.mock("email-provider").played)

    assert shopper("POST", "/cart/items", json={"sku": "mug", "qty": 2}).status_code == 201
    order = shopper("POST", "/orders", json={"payment_source": "tok_visa"})
    assert order.status_code == 201, order.text
    body = order.json()
    assert body["status"] == "paid" and body["total_cents"] == 2500 and body["payment_id"].startswith("ch_")
    assert shopper.stock("mug") == before - 2  # stock reserved and committed

    # the charge went through the payment provider's mock ...
    payments = envctl_stack.mock("payment-provider")
    assert any("amount=2500" in p["request"] and "tok_visa" in p["request"] for p in payments.played)
    # ... and the worker sent the confirmation through the email provider's mock
    assert wait_for(lambda: sum(p["count"] for p in envctl_stack.mock("email-provider").played) > emails_before)
    report = wait_for(lambda: next((o for o in shopper("GET", "/reports/orders").json()["recent"]
                                    if o["ref"] == body["ref"] and o["emails_sent"]), None))
    assert report["status"] == "paid" and report["email"] == "ada@example.com"
    recommended = shopper("GET", "/recommendations").json()
    assert recommended["reason"] == "from categories you buy" and "mug" not in recommended["products"]


def test_a_declined_payment_leaves_stock_unreserved(shop: Topology, gateway: str) -> None:
    shopper = Client(gateway)
    shopper.sign_up_and_log_in("grace@example.com")
    before = shopper.stock("mug")
    shopper("POST", "/cart/items", json={"sku": "mug", "qty": 2})
    order = shopper("POST", "/orders", json={"payment_source": "tok_chargeDeclined"})
    assert order.status_code == 402
    assert order.json()["status"] == "payment_failed" and order.json()["failure"] == "card_declined"
    assert shopper.stock("mug") == before
    statuses = [o["status"] for o in shopper("GET", "/orders").json()["orders"]]
    assert statuses == ["payment_failed"]


# The README's mock section, as it is written there: a test asserting on what the shop sent the
# payment provider, and a fault injected for one test.
@pytest.fixture
def payments(envctl_stack: Stack):
    mock = envctl_stack.mock("payment-provider")
    mock.reset()  # this test sees only its own requests
    return mock


@pytest.fixture
def shopper(shop: Topology, gateway: str) -> Client:
    """A shopper signed in, with two mugs (25.00 EUR) in the cart."""
    client = Client(gateway)
    client.sign_up_and_log_in(f"shopper-{time.monotonic_ns()}@example.com")
    assert client("POST", "/cart/items", json={"sku": "mug", "qty": 2}).status_code == 201
    return client


def test_an_order_charges_the_basket_total(shopper: Client, payments) -> None:
    order = shopper("POST", "/orders", json={"payment_source": "tok_visa"})
    (charge,) = payments.verify(method="POST", path="/v1/charges", count=1,
                                form={"amount": "2500", "currency": "eur"})  # a subset of the form body
    assert charge.header("Idempotency-Key") == order.json()["ref"]  # what was sent, whole
    assert charge.header("Authorization") == "REDACTED"  # and scrubbed


def test_a_provider_outage_fails_the_order_and_keeps_the_stock(shopper: Client, payments) -> None:
    before = shopper.stock("mug")
    payments.fault(kind="status", status=503, method="POST", path="/v1/charges", times=1)
    order = shopper("POST", "/orders", json={"payment_source": "tok_visa"})
    assert order.status_code == 402 and order.json()["status"] == "payment_failed"
    assert shopper.stock("mug") == before  # the reservation was released
    assert [r.outcome for r in payments.requests(method="POST", path="/v1/charges")] == ["fault: status"]


def test_every_app_image_shares_the_base_layers(shop: Topology, engine: Engine) -> None:
    images = ImageBuilder(shop, engine).ensure()  # all present: resolves the refs, builds nothing
    assert not any(image.built for image in images.values())
    python_base = engine.inspect_image(images["base:python"].ref)["RootFS"]["Layers"]
    apps = [n for n, s in shop.services.items() if s.base == "python"]
    assert len(apps) >= 12
    for name in apps:
        layers = engine.inspect_image(images[f"service:{name}"].ref)["RootFS"]["Layers"]
        assert layers[: len(python_base)] == python_base, name


def test_orders_runs_on_the_host_while_the_rest_run_in_containers(
        shop_dir: Path, shop_env, engine: Engine, shop_images: None) -> None:
    env = {**shop_env, "SHOP_PORT": str(free_port())}
    topology = load_topology(shop_dir / "envctl.yaml", environ=env)
    orders_port = free_port()
    result = run_api.up(topology, engine, except_services=[f"orders:{orders_port}"], run_id="onhost")
    process = None
    try:
        assert "orders" not in result.started
        service_env = run_api.host_environment(engine, topology, run_api.current_run(topology, "onhost"), "orders")
        assert service_env["CART_URL"].startswith("http://127.0.0.1:")
        process = subprocess.Popen(
            [sys.executable, str(shop_dir / "services" / "orders" / "app.py")],
            env={**os.environ, **service_env, "PORT": str(orders_port),
                 "PYTHONPATH": str(shop_dir / "services" / "base")},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert wait_for(lambda: _answers(f"http://127.0.0.1:{orders_port}/healthz"), seconds=30)
        shopper = Client(f"http://127.0.0.1:{env['SHOP_PORT']}")
        shopper.sign_up_and_log_in("linus@example.com")
        shopper("POST", "/cart/items", json={"sku": "teapot", "qty": 1})
        # gateway (container) -> orders (host, via host.docker.internal) -> payments, inventory (containers)
        order = shopper("POST", "/orders", json={"payment_source": "tok_visa"})
        assert order.status_code == 201, order.text
        assert order.json()["total_cents"] == 3400
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        teardown.down(topology, engine, "onhost")
    assert run_resources_of(engine, "onhost") == {"containers": [], "networks": [], "volumes": []}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
