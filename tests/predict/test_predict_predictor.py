"""The predictor's behaviour on the shipped artifact."""

from __future__ import annotations

import logging
import shutil
import uuid

import pytest
from predict_helpers import chat

from orchestrator.catalog import load_catalog
from orchestrator.paths import DEFAULT_DEPLOYMENTS, PROJECT_ROOT
from orchestrator.predict import Prediction, Predictor, PredictorInputError
from orchestrator.predict.tokenizer import load_default_tokenizer, paths

ESSAY = "Write a 2,000-word essay on the causes and consequences of the French Revolution."
YES_NO = "Is Paris the capital of France? Answer yes or no."


def test_deterministic_for_a_fixed_artifact(artifact, predictor):
    other = Predictor(artifact, store=None)
    body = chat("Explain how a hash map works, with an example in Python.")
    first = predictor.predict(body)
    assert first == predictor.predict(body) == other.predict(body)
    assert first.features == other.predict(body).features


def test_essay_predicts_more_than_a_yes_no_question(predictor):
    essay = predictor.predict(chat(ESSAY))
    yes_no = predictor.predict(chat(YES_NO))
    # the out-of-source model is more cautious than the in-distribution one was (3x and
    # long_form): answering models write far less than "2,000 words" on average
    assert essay.p50_tokens > 2 * yes_no.p50_tokens
    assert essay.p90_tokens > yes_no.p90_tokens
    assert yes_no.query_class == "standard"


def test_quantiles_are_ordered_and_bounded(predictor):
    for text in (ESSAY, YES_NO, "hi", "Solve 12*7+3 step by step."):
        p = predictor.predict(chat(text))
        assert 1 <= p.p50_tokens <= p.p90_tokens
        assert 0.0 <= p.reasoning_probability <= 1.0
        assert p.prompt_tokens > 0


def test_max_tokens_is_never_exceeded(predictor):
    p = predictor.predict(chat(ESSAY, max_tokens=50))
    assert p.p50_tokens <= 50 and p.p90_tokens <= 50 and p.reasoning_tokens <= 50
    assert p.capped and p.max_tokens == 50


def test_n_choices_multiply_the_budget(predictor):
    one = predictor.predict(chat(YES_NO))
    three = predictor.predict(chat(YES_NO, n=3))
    assert three.p50_tokens == 3 * one.p50_tokens


def test_math_word_problem_is_classed_reasoning(predictor):
    p = predictor.predict(
        chat(
            "A train leaves at 3 pm going 60 mph; another leaves at 4 pm going 80 mph on the "
            "same track. How many miles from the station does the second catch the first?"
        )
    )
    assert p.reasoning_probability > 0.5
    assert p.query_class == "reasoning"


def test_reasoning_switched_off_needs_no_thinking_tokens(predictor):
    body = chat("Prove that the square root of 2 is irrational.")
    on = predictor.predict({**body, "reasoning_effort": "high"})
    off = predictor.predict({**body, "chat_template_kwargs": {"enable_thinking": False}})
    assert on.reasoning_tokens > 0
    assert off.reasoning_tokens == 0


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, {"messages": [{"role": "user", "content": {"oops": 1}}]}, {}, "text"],
)
def test_bad_input_is_a_clear_value_error(predictor, body):
    with pytest.raises(PredictorInputError):
        predictor.predict(body)
    with pytest.raises(ValueError):
        predictor.predict(body)


def test_non_text_only_content_gives_a_safe_prediction(predictor):
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ]
    }
    p = predictor.predict(body)
    assert isinstance(p, Prediction) and p.p50_tokens >= 1


def test_huge_prompt_is_safe_and_long_context(predictor):
    text = "The quick brown fox jumps over the lazy dog. " * 40_000  # ~1.8M characters
    p = predictor.predict(chat(text + "\nSummarize the text above."))
    assert p.query_class == "long_context"
    assert not p.prompt_tokens_exact
    assert 300_000 < p.prompt_tokens < 500_000  # ~10 tokens per sentence
    profile = load_catalog(DEFAULT_DEPLOYMENTS).profile("smollm2-cpu")
    on_cpu = predictor.predict(chat(text), profile)
    assert on_cpu.p90_tokens == 0 and on_cpu.max_tokens == 0  # no room left in 2k context


def test_profile_context_room_caps_the_prediction(predictor):
    profile = load_catalog(DEFAULT_DEPLOYMENTS).profile("smollm2-cpu")
    p = predictor.predict(chat(ESSAY), profile)
    assert p.profile == "smollm2-cpu"
    assert p.p90_tokens <= profile.max_model_len - p.prompt_tokens
    assert p.reasoning_tokens == 0  # the profile has no reasoning mode


def test_predict_many_featurizes_once(predictor):
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    out = predictor.predict_many(chat(ESSAY), catalog.profiles)
    assert set(out) == {p.name for p in catalog.profiles}
    feats = {id(p.features) for p in out.values()}
    assert len(feats) == 1


def test_known_model_family_gets_its_training_prior(predictor):
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    llama = catalog.profile("llama8b-bf16-eagle3")
    assert predictor.prior_for(llama).prior_offset == pytest.approx(
        predictor.meta.known_models["Meta-Llama-3.1-8B-Instruct-Turbo"].log_offset
    )


def test_hub_tokenizer_falls_back_to_default_with_a_warning(predictor, caplog):
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    # a hub id no other test names, so the process-wide tokenizer cache has not seen it yet
    hub_id = f"example-org/never-downloaded-{uuid.uuid4().hex[:8]}"
    profile = catalog.profile("qwen3-8b-dflash").model_copy(update={"tokenizer": hub_id})
    with caplog.at_level(logging.WARNING, logger="orchestrator.predict.tokenizer"):
        p = predictor.predict(chat(YES_NO), profile)
        again = predictor.predict(chat(YES_NO), profile)
    assert p.prompt_tokens == again.prompt_tokens == predictor.predict(chat(YES_NO)).prompt_tokens
    warned = [r for r in caplog.records if "default (SmolLM2) tokenizer" in r.getMessage()]
    assert len(warned) == 1 and hub_id in warned[0].getMessage()  # once per spec


def test_local_tokenizer_folder_is_used(predictor, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    char_tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    char_tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    folder = tmp_path / "my-model"
    folder.mkdir()
    char_tok.save(str(folder / "tokenizer.json"))
    catalog = load_catalog(DEFAULT_DEPLOYMENTS)
    profile = catalog.profile("smollm2-cpu").model_copy(update={"tokenizer": str(folder)})
    text = "abcdefghij"
    p = predictor.predict(chat(text), profile)
    default = predictor.predict(chat(text))
    assert p.prompt_tokens != default.prompt_tokens
    assert p.prompt_tokens >= len(text)
    assert load_default_tokenizer() is not None and paths.cache_dir().is_dir()
    shutil.rmtree(folder)
