import pytest

from envctl.topology.secrets import MASK, Masker, looks_secret, topology_secrets
from envctl.topology import load_topology


@pytest.mark.parametrize("name", ["DB_PASSWORD", "PGPASSWORD", "API_TOKEN", "client_secret", "STRIPE_KEY",
                                  "API_KEY", "AWS_ACCESS_KEY_ID", "GOOGLE_CREDENTIALS", "PRIVATE_PEM", "KEY"])
def test_secret_looking_names(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["PORT", "DATABASE_URL", "KEYBOARD_LAYOUT", "MONKEY", "STORE_NAME", "PWD"])
def test_ordinary_names(name):
    assert not looks_secret(name)


def test_masker_replaces_values_longest_first_and_ignores_short_or_plain_ones():
    masker = Masker(["hunter2", "hunter2-long", "true", "123456", "ab"])
    assert masker.mask("a hunter2-long and hunter2, true 123456 ab") == f"a {MASK} and {MASK}, true 123456 ab"
    assert masker.mask_bytes(b"x hunter2 \xff") == f"x {MASK} ".encode() + b"\xff"
    masker.enabled = False
    assert masker.mask("hunter2") == "hunter2"


def test_topology_secrets_come_from_declarations_names_and_url_passwords(tmp_path):
    (tmp_path / "key.pem").write_text("file-secret-value\n")
    (tmp_path / "envctl.yaml").write_text("""
name: t
secrets:
  token: {environment: HOST_TOKEN}
  key: {file: ./key.pem}
services:
  app:
    image: app
    environment:
      DB_PASSWORD: pw-literal
      DATABASE_URL: postgres://u:url-password@db/x
      STORE_NAME: not-a-secret
      API_TOKEN: ${app.host}
""")
    values = topology_secrets(load_topology(tmp_path / "envctl.yaml", environ={"HOST_TOKEN": "from-the-host"}))
    assert values == {"from-the-host", "file-secret-value", "pw-literal", "url-password"}
