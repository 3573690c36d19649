"""One reading of envctl's on/off switches, and the code-only assembler obeys it."""
from __future__ import annotations

import pytest

from envctl.images import assemble
from envctl.switches import switched_on


@pytest.mark.parametrize("value", ["0", "off", "OFF", " false ", "No"])
def test_off_words_switch_off(value):
    assert not switched_on("ENVCTL_X", {"ENVCTL_X": value})


@pytest.mark.parametrize("environ", [{}, {"ENVCTL_X": "1"}, {"ENVCTL_X": "on"}, {"ENVCTL_X": "whatever"}])
def test_unset_or_anything_else_is_on(environ):
    assert switched_on("ENVCTL_X", environ)


@pytest.mark.parametrize("value, on", [("off", False), ("false", False), ("0", False), ("1", True)])
def test_assembling_follows_the_switch(monkeypatch, value, on):
    monkeypatch.setenv("ENVCTL_ASSEMBLE", value)
    assert assemble.enabled() is on
