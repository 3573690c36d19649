from pathlib import Path

import pytest

from envctl.errors import EnvctlError
from envctl.images.secretbuild import SecretMount, SecretStep, declared_args, plan, step_command

DOCKERFILE = Path("/ctx/Dockerfile")


def test_a_dockerfile_without_mounts_is_one_ordinary_build():
    assert not plan("FROM x\nRUN echo hi\n", DOCKERFILE).needs_secrets


def test_split_at_secret_steps_with_continuations_comments_and_args():
    text = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG MODE=dev
# a comment
RUN --mount=type=secret,id=tok,env=TOKEN \\
    # comment inside
    make \\
      install
COPY . /app
RUN --mount=type=ssh ["git", "clone", "x"]
"""
    result = plan(text, DOCKERFILE)
    assert result.head == ["ARG BASE_IMAGE", "FROM ${BASE_IMAGE}", "ARG MODE=dev"]
    assert result.args == ["ARG BASE_IMAGE", "ARG MODE=dev"]
    (first, after_first), (second, after_second) = result.parts
    assert first.line == 5 and first.command == "make       install"  # the parts joined as the builder joins them
    assert first.mounts == (SecretMount("secret", "tok", None, "TOKEN", True),)
    assert after_first == ["COPY . /app"]
    assert second.command == ["git", "clone", "x"] and second.mounts[0].kind == "ssh" and after_second == []


@pytest.mark.parametrize("text, message", [
    ("FROM a AS b\nFROM c\nRUN --mount=type=secret,id=x true\n", "multi-stage"),
    ("FROM a\nRUN --mount=type=cache,target=/root/.cache true\n", "type=cache is not supported"),
    ("FROM a\nRUN --mount=type=secret,id=x --network=none true\n", "--network is not supported"),
    ("FROM a\nRUN --mount=type=secret,id=x\n", "no command"),
])
def test_what_envctl_cannot_build_is_an_error_naming_the_line(text, message):
    with pytest.raises(EnvctlError, match=message) as raised:
        plan(text, DOCKERFILE)
    assert str(DOCKERFILE) + ":" in str(raised.value)


def test_step_commands_read_secrets_at_run_time_never_on_the_command_line():
    mounts = (SecretMount("secret", "tok", None, "TOKEN"), SecretMount("ssh", "default", None, None, False))
    shell = step_command(SecretStep(3, "make install", mounts), ["/bin/sh", "-c"], {"MODE": "prod"})
    assert shell == ["/bin/sh", "-c", 'export MODE=prod; export TOKEN="$(cat /run/secrets/tok)"; '
                     "export SSH_AUTH_SOCK=/run/secrets/ssh_agent.sock; make install"]
    exec_form = step_command(SecretStep(3, ["git", "clone"], mounts[1:]), ["/bin/sh", "-c"], {})
    assert exec_form[:3] == ["/bin/sh", "-c", 'export SSH_AUTH_SOCK=/run/secrets/ssh_agent.sock; exec "$@"']
    assert exec_form[3:] == ["sh", "git", "clone"]


def test_declared_args_take_given_values_then_defaults():
    assert declared_args(["ARG A=1", "ARG B", "ARG C=3"], {"B": "2", "C": "x", "Z": "no"}) == {"A": "1", "B": "2", "C": "x"}


def test_empty_lines_inside_a_continued_instruction_are_skipped_as_docker_does():
    text = "FROM x\nRUN --mount=type=secret,id=tok make \\\n\n    install\n\\\n\n"
    result = plan(text, DOCKERFILE)
    assert result.head == ["FROM x"]
    [(step, after)] = result.parts
    assert step.command == "make     install" and after == []


def test_only_newline_ends_a_line_as_the_builder_reads_it():
    # A form feed inside a RUN is part of its command for the builder, not a line end.
    text = "FROM x\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\nRUN printf 'a\x0cRUN b'\r\nENV A=1\n"
    result = plan(text, DOCKERFILE)
    step, after = result.parts[0]
    assert after == ["RUN printf 'a\x0cRUN b'", "ENV A=1"]


def test_continued_parts_are_joined_as_the_builder_joins_them():
    # The builder removes the backslash (and spaces after it) and adds nothing: `ec\` + `ho x` is `echo x`,
    # and the next part keeps its leading spaces (inside quotes, they are the command's).
    text = 'FROM x\nRUN --mount=type=secret,id=tok echo "a\\\n   b" && ec\\ \t\nho x\nENV A=1 \\\n    B=2\n'
    [(step, after)] = plan(text, DOCKERFILE).parts
    assert step.command == 'echo "a   b" && echo x'
    assert after == ["ENV A=1     B=2"]


def test_an_escaped_backslash_at_the_end_of_a_line_does_not_continue_it():
    text = "FROM x\nENV A=trailing\\\\\nRUN --mount=type=secret,id=tok make\n\\\nENV B=1\n"
    result = plan(text, DOCKERFILE)
    assert result.head == ["FROM x", "ENV A=trailing\\\\"]
    [(step, after)] = result.parts
    assert step.line == 3 and step.command == "make" and after == ["ENV B=1"]


def test_a_secret_steps_dockerfile_with_another_escape_character_is_refused():
    # With `# escape=\``, a backtick continues a line: envctl would cut the file elsewhere than the builder.
    text = "# escape=`\nFROM x\nRUN --mount=type=secret,id=tok make `\n  install\n"
    with pytest.raises(EnvctlError, match="another escape character"):
        plan(text, DOCKERFILE)
    assert plan("# escape=\\\nFROM x\nRUN --mount=type=secret,id=tok make\n", DOCKERFILE).needs_secrets
    assert plan("FROM x\n# escape=`\nRUN --mount=type=secret,id=tok make\n", DOCKERFILE).needs_secrets  # a comment
