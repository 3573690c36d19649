"""`envctl up` on a Compose project as it is: no envctl.yaml, no -f; the override file and .env apply."""
from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest
import requests

from envctl.backend.engine import Engine
from tests.integration.conftest import envctl, run_resources

pytestmark = pytest.mark.integration

COMPOSE = """\
    # envctl's own keys live in x-envctl blocks, which docker compose ignores.
    x-envctl:
      name: envctl-test
      bases:
        os:
          bootstrap: {distro: debian, suite: bookworm, packages: [python3, ca-certificates]}
    services:
      store:
        build: store
        command: [python3, -u, /app/app.py]
        ports: ["8000"]
        volumes: ["store-data:/data"]
        environment:
          STORE_NAME: ${STORE_NAME:?set in .env}
        x-envctl: {base: os, probe: {http: /healthz, port: 8000, timeout: 60s}}
      backend:
        build: backend
        command: [python3, -u, /app/app.py]
        depends_on: [store]
        ports: ["8000"]
        environment: {STORE_URL: "${store.url}", STORE_HOST: "${store.host}", STORE_PORT: "${store.port}"}
        x-envctl: {base: os, probe: {tcp: 8000, timeout: 60s}}
      api:
        build: api
        command: [python3, -u, /app/app.py]
        depends_on:
          backend: {condition: service_healthy}
        environment: {BACKEND_URL: "${backend.url.8000}"}
        x-envctl: {base: os, probe: {http: /healthz, port: 8000, timeout: 60s}}
    volumes:
      store-data: {}
    """

OVERRIDE = """\
    services:
      api:
        ports:
          - target: 8000
            published: "${API_PORT}"
    """


def test_up_runs_a_compose_project_with_its_override_file_and_dotenv(stack_dir: Path, stack_env, engine: Engine) -> None:
    (stack_dir / "envctl.yaml").unlink()
    (stack_dir / "docker-compose.yml").write_text(textwrap.dedent(COMPOSE))
    (stack_dir / "docker-compose.override.yml").write_text(textwrap.dedent(OVERRIDE))
    (stack_dir / ".env").write_text('\ufeffSTORE_NAME="from-dotenv" # quoted, with a comment\n')
    run = "compose-" + uuid.uuid4().hex[:6]
    envctl(["up", "--run", run], stack_dir, stack_env)
    try:
        api = f"http://127.0.0.1:{stack_env['API_PORT']}"
        assert requests.put(f"{api}/items/k", data=b"v", timeout=10).status_code == 201
        assert requests.get(f"{api}/items/k", timeout=10).json()["store"] == "from-dotenv"
    finally:
        envctl(["down", "--run", run], stack_dir, stack_env)
    assert run_resources(engine, run) == {"containers": [], "networks": [], "volumes": []}
