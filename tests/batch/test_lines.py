"""Batch input files: valid lines, and malformed ones named by line number and field."""

from __future__ import annotations

import json

import pytest

from orchestrator.batch.lines import InputFileError, parse_input

CHAT = "/v1/chat/completions"


def _line(custom_id="a", url=CHAT, **body) -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": "m", **body}}
    )


def test_valid_lines_keep_their_numbers_and_bodies():
    text = "\n".join([_line("a", messages=[]), "", _line("b", max_tokens=3)]) + "\n"
    parsed = parse_input(text.encode(), CHAT)
    assert [(ln.number, ln.custom_id) for ln in parsed.lines] == [(1, "a"), (3, "b")]
    assert parsed.lines[1].body == {"model": "m", "max_tokens": 3}
    assert parsed.errors == [] and parsed.total == 2


@pytest.mark.parametrize(
    ("raw", "param", "words"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        (json.dumps({"method": "POST", "url": CHAT, "body": {}}), "custom_id", "string"),
        (
            json.dumps({"custom_id": "x", "method": "GET", "url": CHAT, "body": {}}),
            "method",
            "POST",
        ),
        (_line("x", url="/v1/completions"), "url", "endpoint"),
        (json.dumps({"custom_id": "x", "url": CHAT, "body": []}), "body", "JSON object"),
        (_line("x", stream=True), "body.stream", "cannot stream"),
        (
            json.dumps({"custom_id": "x", "url": CHAT, "body": {}, "extra": 1}),
            "extra",
            "not a field",
        ),
    ],
)
def test_a_malformed_line_is_an_error_naming_its_line_and_field(raw, param, words):
    parsed = parse_input(f"{_line('ok')}\n{raw}\n".encode(), CHAT)
    assert [ln.custom_id for ln in parsed.lines] == ["ok"]
    (err,) = parsed.errors
    assert err.number == 2 and err.param == param and words in err.message
    assert err.text().startswith("line 2")


def test_a_repeated_custom_id_is_an_error_on_the_later_line():
    parsed = parse_input(f"{_line('a')}\n{_line('a')}\n".encode(), CHAT)
    assert len(parsed.lines) == 1
    assert parsed.errors[0].number == 2 and parsed.errors[0].param == "custom_id"


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xff\xfe"])
def test_an_empty_or_undecodable_file_is_refused_whole(content):
    with pytest.raises(InputFileError):
        parse_input(content, CHAT)
