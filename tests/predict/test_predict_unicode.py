"""Every Unicode string is counted and predicted, never a crash (issue 15).

The default tokenizer's vocabulary lacks some single-byte tokens (control characters such as
U+0004, the UTF-8 lead bytes of U+40000..U+BFFFF); the fast tiktoken path must still agree
with `tokenizers` on them, and lone surrogates (legal in JSON) must not raise.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.predict.predictor import Predictor
from orchestrator.predict.tokenizer import fast_encoder, load_default_tokenizer, scrub_surrogates

# the code points the issue found (each gave a bare 500), and one of each plane 0..16
REPORTED = ["a\u0004b", "\u0013", "x\u0016y", "\u001d", "\U00040000", "\U000bffff", "\U00070000"]
PLANES = [chr(plane * 0x10000 + 0x41) for plane in range(17)]
CONTROL = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]

# any code point, surrogates included (json.loads("\"\\ud800\"") gives one)
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)
ANY_TEXT = st.text(ANY_CHAR, max_size=60) | st.lists(
    st.sampled_from([*REPORTED, *PLANES, *CONTROL, " ", "a", "\n", "ab"]), max_size=30
).map("".join)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _exact(text: str) -> list[int]:
    tok = load_default_tokenizer()
    return tok.encode(scrub_surrogates(text), add_special_tokens=False).ids


@pytest.mark.parametrize("text", [*REPORTED, *PLANES, "".join(CONTROL), "a\ud800b", "\udfff"])
def test_fast_encoder_is_total_and_exact_on_reported_inputs(text):
    encode = fast_encoder(load_default_tokenizer())
    assert encode(text) == _exact(text)


@FAST
@given(ANY_TEXT)
def test_fast_encoder_matches_tokenizers_on_any_text(text):
    assert fast_encoder(load_default_tokenizer())(text) == _exact(text)


@FAST
@given(ANY_TEXT, ANY_TEXT)
@example(system="\ud800", user="\ud800")  # a lone surrogate: JSON "\ud800" decodes to one
def test_predict_accepts_any_text(artifact, system, user):
    predictor = Predictor(artifact, store=None)  # stateless: no calibration store
    chat = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    prediction = predictor.predict(chat)
    assert prediction.prompt_tokens >= 0 and prediction.p90_tokens >= prediction.p50_tokens >= 0
    completion = predictor.predict({"prompt": [user, system]})
    assert completion.prompt_tokens >= 0


def test_scrub_surrogates_keeps_valid_text_unchanged():
    text = "Ünïcödé 🙂 \U00040000"
    assert scrub_surrogates(text) is text
    assert "\ufffd" in scrub_surrogates("a\ud800b")
