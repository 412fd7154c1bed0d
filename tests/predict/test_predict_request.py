"""Reading request bodies: errors are clear ValueErrors; odd but legal content is tolerated."""

from __future__ import annotations

import pytest

from orchestrator.predict.request import PredictorInputError, parse_request


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "messages: must be a non-empty list"),
        ({"messages": "hi"}, "messages: must be a non-empty list"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "unknown role"),
        ({"messages": [{"role": "user", "content": 42}]}, "content: must be a string or a list"),
        ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "with a type"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "string"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}, "effort"),
        ({"prompt": []}, "prompt"),
        ({"model": "auto"}, "needs `messages`"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_bodies_raise_a_value_error_naming_the_field(body, fragment):
    with pytest.raises(PredictorInputError) as info:
        parse_request(body)
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)


def test_non_text_parts_are_skipped_and_counted():
    parsed = parse_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}},
                    ],
                }
            ]
        }
    )
    assert parsed.turns[0].text == "What is in this picture?"
    assert parsed.non_text_parts == 2


def test_params_are_read():
    parsed = parse_request(
        {
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "max_completion_tokens": 77,
            "n": 3,
            "reasoning_effort": "high",
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
    )
    assert (parsed.max_tokens, parsed.n, parsed.reasoning_effort) == (77, 3, "high")
    assert parsed.reasoning_requested is True
    assert parsed.last_user_text == "u"
    assert "function" in parsed.tools_text


def test_thinking_switch_and_completion_prompts():
    off = parse_request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "chat_template_kwargs": {"enable_thinking": False},
        }
    )
    assert off.reasoning_requested is False
    completion = parse_request({"prompt": "Once upon a time"})
    assert completion.is_completion and completion.max_tokens == 16  # the OpenAI default
    ids = parse_request({"prompt": [1, 2, 3], "max_tokens": 5})
    assert ids.prompt_token_ids == (1, 2, 3)
