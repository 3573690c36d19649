"""Dockerfiles the builder's parser reads otherwise than dockerfile_parse, or rejects: refused, never assembled.

A wrong refusal costs a build; a wrong acceptance makes an image unlike the builder's."""
import pytest

from envctl.images import codeonly
from envctl.images.codeonly import CodeOnly, NotCodeOnly, Split

BASE = {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/bash"]}


def refused(text: str, reason: str, base: dict | None = None) -> None:
    """`text` is not code-only (in whole, or as a tail after a RUN), for `reason`."""
    result = codeonly.classify(text, {}, BASE if base is None else base)
    assert isinstance(result, NotCodeOnly) and reason in result.reason, result


def refused_in_a_split(text: str, reason: str) -> None:
    result = codeonly.split(text)
    if isinstance(result, Split):
        result = codeonly.decide(result.tail, {}, BASE)
    assert isinstance(result, NotCodeOnly) and reason in result.reason, result


# -- 1: a line ending in an escaped backslash --------------------------------------------------------

def test_two_backslashes_at_a_lines_end_are_refused() -> None:
    text = "FROM base\nENV A=x\\\\\nLABEL b=c\n"  # newer builders: ENV A=x\ then LABEL b=c
    refused(text, "two backslashes")
    refused_in_a_split("FROM base\nRUN true\nENV A=x\\\\ \nLABEL b=c\n", "two backslashes")
    refused_in_a_split("FROM base\nRUN echo \\\\\nCOPY x /x\n", "two backslashes")
    assert isinstance(codeonly.parse("FROM base\n# ends in \\\\\nENV A=x\n"), codeonly.Parsed)  # a comment


# -- 2: a CMD before the cut, an ENTRYPOINT after it ----------------------------------------------

def test_an_entrypoint_in_the_tail_after_a_cmd_in_the_prefix_is_refused() -> None:
    refused_in_a_split('FROM base\nCMD ["serve"]\nRUN true\nENTRYPOINT ["/app"]\n', "CMD before it")
    assert isinstance(codeonly.split('FROM base\nRUN true\nCMD ["serve"]\nENTRYPOINT ["/app"]\n'), Split)
    assert isinstance(codeonly.split('FROM base\nCMD ["serve"]\nRUN true\nCMD ["x"]\n'), Split)


# -- 3: parser directives, however they are spaced ------------------------------------------------------

@pytest.mark.parametrize("line", [" # escape=`", "#\tescape=`", "#ESCAPE =`", "\t#syntax=docker/dockerfile:1",
                                  "# check=skip=all"])
def test_a_parser_directive_is_refused_however_it_is_spaced(line: str) -> None:
    refused(f"{line}\nFROM a\n", "directive")
    refused_in_a_split(f"{line}\nFROM a\nRUN true\nCOPY x /x\n", "directive")


def test_a_byte_order_mark_or_bytes_not_utf8_are_refused() -> None:
    refused("\ufeff# escape=`\nFROM a\n", "byte-order mark")  # the builder drops it, then reads the directive
    refused("\ufeffFROM a\nCOPY x /x\n", "byte-order mark")
    refused_in_a_split("FROM a\nRUN echo \ufffd\nCOPY x /x\n", "not UTF-8")


# -- 4, 5: JSON forms the builder reads otherwise or rejects ---------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ('FROM a\nCMD ["a"] # run it\n', "text after the JSON array"),
    ('FROM a\nENTRYPOINT ["a"] x\n', "text after the JSON array"),
    ('FROM a\nCOPY ["a", "/x/"] b\n', "text after the JSON array"),
    ('FROM a\nCOPY ["a", 1]\n', "other than strings"),
    ('FROM a\nCOPY ["a", null, "/x/"]\n', "other than strings"),
    ('FROM a\nCMD ["a", 1]\n', "other than strings"),
    ('FROM a\nENTRYPOINT [true]\n', "other than strings"),
    ('FROM a\nCMD ["a\\ud800"]\n', "surrogate"),
    ('FROM a\nCOPY ["a\\"b", "/x/"]\n', "quotes"),
])
def test_a_json_form_the_builder_reads_otherwise_is_refused(text: str, reason: str) -> None:
    assert isinstance(codeonly.parse(text), NotCodeOnly)  # found before any base is read
    refused(text, reason)
    refused_in_a_split(text.replace("FROM a\n", "FROM a\nRUN true\n"), reason)


def test_a_json_array_of_other_than_strings_before_the_cut_is_refused_without_a_traceback() -> None:
    refused_in_a_split('FROM a\nCOPY [1, "/x"]\nRUN true\n', "context's top")
    refused_in_a_split('FROM a\nSHELL ["sh", "-c"]\nRUN true\nCMD ["a", 1]\n', "other than strings")


def test_json_forms_with_trailing_spaces_or_flags_still_read() -> None:
    assert codeonly.classify('FROM a\nCMD ["a", "b"]  \n', {}, BASE).config["Cmd"] == ["a", "b"]
    assert codeonly.classify("FROM a\nCMD [not json\n", {}, BASE).config["Cmd"] == ["/bin/sh", "-c", "[not json"]


# -- 6: variables and escapes the builder expands otherwise ----------------------------------------------

@pytest.mark.parametrize("value", ["A=${B:-x}", "A=${B:+x}", "A=a$", "A=$1", "A=$$", "A=$Bé", 'A="a\\\\b"',
                                   'A="\\$HOME"', "A=a\\ b", "$K=v"])
def test_an_expansion_the_builder_does_otherwise_is_refused(value: str) -> None:
    refused(f"FROM a\nENV {value}\n", "")
    refused(f"FROM a\nLABEL {value}\n", "")
    refused_in_a_split(f"FROM a\nRUN true\nENV {value}\n", "")


def test_plain_variables_still_expand() -> None:
    config = codeonly.classify('FROM a\nARG V=1\nENV A=$V B=${V}x C="$V y" D=\'$V\'\n', {}, BASE).config
    assert config["Env"][1:] == ["A=1", "B=1x", "C=1 y", "D=$V"]


@pytest.mark.parametrize("text", ["FROM a\nCOPY x /a\\b\n", "FROM a\nWORKDIR /a$\n", "FROM a\nUSER ${U:-x}\n",
                                  "FROM a\nARG A=${B:-x}\nCOPY x /x\n", "ARG B=a\\b\nFROM a\n",
                                  "ARG A=1 B=2\nFROM a\n", "FROM a\nARG A=1 B=2\nENV X=$A\n"])
def test_other_instructions_expand_alike_or_are_refused(text: str) -> None:
    assert isinstance(codeonly.classify(text, {}, BASE), NotCodeOnly)


def test_a_variable_refused_by_its_value_is_found_once_the_value_is_known() -> None:
    parsed = codeonly.parse("FROM a\nARG D\nCOPY x $D\n")
    assert isinstance(parsed, codeonly.Parsed)
    result = codeonly.decide(parsed, {"D": "/x"}, BASE)
    assert isinstance(result, CodeOnly) and result.steps[0].destination == "/x"


# -- 7: whitespace Python reads otherwise than the builder ---------------------------------------------------

@pytest.mark.parametrize("odd", ["\x1c", "\x1f", "\x0b", "\x0c", "\x85", "\xa0", "\u2028", "\u3000", "\r"])
def test_odd_whitespace_in_an_instruction_envctl_reads_is_refused(odd: str) -> None:
    if odd != "\r":  # "\r\n" ends a line for both
        refused(f"FROM a\nLABEL a=b{odd}\n", "whitespace")
    refused(f"FROM a\nLABEL a=b{odd} c=d\n", "whitespace")
    refused(f"FROM a{odd} \nCOPY x /x\n", "whitespace")
    refused(f"FROM a\n{odd} \nCOPY x /x\n", "whitespace")  # a blank line to Python, not to the builder
    refused(f"FROM a\n{odd}# note\nCOPY x /x\n", "whitespace")
    refused_in_a_split(f"FROM a\nARG A=b{odd} \nRUN true\nCOPY x /x\n", "whitespace")
    refused_in_a_split(f"FROM a\nRUN true\nCOPY x /x{odd} \n", "whitespace")


def test_odd_whitespace_inside_a_step_for_the_builder_and_crlf_line_ends_are_fine() -> None:
    assert codeonly.split("FROM a\nRUN echo a\x1cb\xa0c\nCOPY x /x\n").tail.instructions == (("COPY", "x /x"),)
    assert isinstance(codeonly.parse("FROM a\r\nCOPY x /x\r\n"), codeonly.Parsed)


# -- 8: what the builder rejects ------------------------------------------------------------------------

@pytest.mark.parametrize("tail, reason", [
    ("ENV\n", "without a value"),
    ("LABEL\n", "without a value"),
    ("WORKDIR\n", "WORKDIR"),
    ("STOPSIGNAL\n", "STOPSIGNAL"),
    ("STOPSIGNAL SIGNOPE\n", "STOPSIGNAL"),
    ("STOPSIGNAL 0\n", "STOPSIGNAL"),
    ("USER\n", "USER"),
    ("EXPOSE\n", "EXPOSE"),
    ("CMD\n", "CMD"),
    ("EXPOSE 99999999999999999999\n", "EXPOSE"),
    ("EXPOSE 65536\n", "EXPOSE"),
    ("EXPOSE 0\n", "EXPOSE"),
    ("EXPOSE \u00b2\n", "EXPOSE"),  # a digit to str.isdigit, not to int()
    ("LABEL a=" + "x" * 70_000 + "\n", "longer than"),
])
def test_what_the_builder_rejects_is_refused(tail: str, reason: str) -> None:
    refused("FROM a\n" + tail, reason)
    refused_in_a_split("FROM a\nRUN true\n" + tail, reason)


def test_signals_and_ports_the_builder_takes() -> None:
    config = codeonly.classify("FROM a\nSTOPSIGNAL SIGQUIT\nEXPOSE 65535 1/udp\n", {}, BASE).config
    assert config["StopSignal"] == "SIGQUIT" and config["ExposedPorts"] == {"65535/tcp": {}, "1/udp": {}}
    assert codeonly.classify("FROM a\nSTOPSIGNAL 9\n", {}, BASE).config["StopSignal"] == "9"


# -- 9, 10: a COPY of the generated Dockerfile before the cut; the JSON form's detection ----------------------

@pytest.mark.parametrize("value", [".envctl.Dockerfile /x", "./.envctl.Dockerfile /x", "a/../.envctl.Dockerfile /x",
                                   '[".envctl.Dockerfile", "/x"]', "--chown=1 [\".envctl.Dockerfile\", \"/x\"]"])
def test_a_copy_of_the_generated_dockerfile_before_the_run_is_refused(value: str) -> None:
    assert codeonly._may_copy_the_root(value)
    refused_in_a_split(f"FROM a\nCOPY {value}\nRUN true\n", ".envctl.Dockerfile")


def test_only_a_first_source_with_a_bracket_is_the_json_form() -> None:
    assert codeonly._may_copy_the_root('./* ["/x"]')  # whitespace-separated: "./*" is a source
    assert not codeonly._may_copy_the_root('src ["/x"]')
    assert not codeonly._may_copy_the_root('["src", "/x/"]')
    assert codeonly._may_copy_the_root('["src", "/x/"] extra')


# -- 11, heredocs: what the assembler does not carry ------------------------------------------------------------

def test_a_maintainer_is_the_builders_step() -> None:
    # Without a RUN it makes the Dockerfile the builder's; before the cut it goes to the builder with the
    # prefix, and the assembler keeps the prefix's Author (tests/integration/test_assemble.py compares it).
    refused("FROM a\nMAINTAINER me\nCOPY x /x\n", "MAINTAINER")
    for text in ("FROM a\nMAINTAINER me\nRUN true\nCOPY x /x\n", "FROM a\nRUN true\nMAINTAINER me\nCOPY x /x\n"):
        cut = codeonly.split(text)
        assert isinstance(cut, Split) and "MAINTAINER me" in cut.prefix, cut


def test_a_here_document_in_a_copy_is_refused() -> None:
    refused("FROM a\nCOPY <<EOF /x\n", "here-document")
