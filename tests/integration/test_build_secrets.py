"""Build secrets (files, host variables, an SSH agent) reach the build and never an image.

The canaries are searched for in `docker save` of every image the build made, in
`docker history --no-trunc` and in `docker image inspect`, and in the saved build log.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from envctl.backend import engine as eng

from .conftest import PROJECT, envctl

pytestmark = pytest.mark.integration

DOCKERFILE = textwrap.dedent("""\
    ARG BASE_IMAGE
    FROM ${BASE_IMAGE}
    ARG GREETING=hello
    RUN printf '%s' "a\\
       b" > /joined && ec\\
    ho x > /echoed && echo trailing\\\\
    RUN echo separate > /separate
    RUN --mount=type=secret,id=api_token,env=API_TOKEN \\
        sh -c 'test "$API_TOKEN" = "$(cat /run/secrets/api_token)" && echo "token is $API_TOKEN" && echo "len=${#API_TOKEN}" > /token-used && echo "$GREETING" > /greeting'
    RUN --mount=type=secret,id=signing_key,target=/etc/app/key.pem sha256sum /etc/app/key.pem > /key-digest
    RUN --mount=type=ssh python3 -c "import socket, os, struct; s = socket.socket(socket.AF_UNIX); s.connect(os.environ['SSH_AUTH_SOCK']); s.sendall(struct.pack('>IB', 1, 11)); size = struct.unpack('>I', s.recv(4))[0]; open('/agent-answer', 'w').write(str(s.recv(size)[0]))"
    COPY marker.txt /marker.txt
    """)


@pytest.fixture
def ssh_agent(tmp_path: Path):
    """A real ssh-agent holding one key, on a socket of this test's own."""
    socket_path = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-s", "-a", str(socket_path)], capture_output=True, text=True, check=True)
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    key = tmp_path / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "envctl-test", "-f", str(key)], check=True)
    subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(socket_path)}, check=True,
                   capture_output=True)
    yield str(socket_path)
    os.kill(pid, signal.SIGTERM)


# About 90 s warm; cold it builds its images from scratch, and as the suite's first test it also
# bootstraps the shared base.
@pytest.mark.timeout(1200)
def test_secrets_reach_the_build_and_no_image(engine, stack_dir, stack_env, ssh_agent):
    env_canary = f"env-canary-{uuid.uuid4().hex}"
    file_canary = f"file-canary-{uuid.uuid4().hex}"
    context = stack_dir / "secretive"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "marker.txt").write_text(uuid.uuid4().hex)  # a fresh image, never a cached one
    (stack_dir / "signing_key.pem").write_text(file_canary)
    topology = stack_dir / "envctl.yaml"
    topology.write_text(topology.read_text() + textwrap.dedent("""
          secretive:
            base: os
            build: {context: secretive, args: {GREETING: hi}, secrets: [api_token, signing_key], ssh: [default]}
            command: [python3, -c, "import time; time.sleep(600)"]
        secrets:
          api_token: {environment: API_TOKEN_FOR_BUILD}
          signing_key: {file: ./signing_key.pem}
        """))
    before = {image["Id"] for image in engine.images({eng.PROJECT: PROJECT})}
    env = {**stack_env, "API_TOKEN_FOR_BUILD": env_canary, "SSH_AUTH_SOCK": ssh_agent}
    built = envctl(["build", "secretive"], stack_dir, env)
    assert env_canary not in built.stdout + built.stderr

    ref = next(t for image in engine.images({eng.PROJECT: PROJECT}) for t in image.get("RepoTags") or []
               if t.startswith(f"{PROJECT}/secretive:"))
    # The build could use all three, and the build arg beside them.
    out = subprocess.run(["docker", "run", "--rm", ref, "sh", "-c",
                          "cat /token-used /greeting /agent-answer; echo; wc -c < /etc/app/key.pem; cat /key-digest"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == [f"len={len(env_canary)}", "hi", "12"], out  # 12: the agent's identities answer
    assert out[3] == "0", "only an empty mount point may remain where the file secret was mounted"
    # The parts before a secret step run as the builder reads the file: continued lines joined as they are,
    # and a line ending in an escaped backslash not continued.
    joined = subprocess.run(["docker", "run", "--rm", ref, "sh", "-c", "cat /joined; echo; cat /echoed /separate"],
                            capture_output=True, text=True, check=True).stdout
    assert joined == "a   b\nx\nseparate\n", joined

    new_images = [image["Id"] for image in engine.images({eng.PROJECT: PROJECT}) if image["Id"] not in before]
    assert new_images
    for image in {*new_images, ref}:
        saved = b"".join(engine.api.get_image(image))
        history = json.dumps(engine.api.history(image))
        inspect = json.dumps(engine.api.inspect_image(image))
        for canary in (env_canary, file_canary):
            assert canary.encode() not in saved, f"{canary} is in 'docker save' of {image}"
            assert canary not in history, f"{canary} is in the history of {image}"
            assert canary not in inspect, f"{canary} is in 'docker inspect' of {image}"
    log = (stack_dir / ".envctl/builds/secretive.log").read_text()
    assert "token is ******" in log and env_canary not in log, "the build log masks what the step printed"


def test_a_secret_the_service_does_not_list_is_refused_naming_the_line(stack_dir, stack_env):
    context = stack_dir / "greedy"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
                                        "RUN --mount=type=secret,id=other cat /run/secrets/other\n")
    topology = stack_dir / "envctl.yaml"
    topology.write_text(topology.read_text() + "\n  greedy:\n    base: os\n    build: greedy\n")
    result = envctl(["build", "greedy"], stack_dir, stack_env, check=False)
    assert result.returncode == 1
    assert f"{context / 'Dockerfile'}:3" in result.stderr and "build.secrets does not list" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_dockerfile_is_an_error_naming_it(stack_dir, stack_env):
    dockerfile = stack_dir / "store" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUNN echo typo\n")
    result = envctl(["build", "store"], stack_dir, stack_env, check=False)
    assert result.returncode == 1
    assert str(dockerfile) in result.stderr and "unknown instruction" in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr
