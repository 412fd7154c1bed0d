"""The difficulty model: tier_success on predictions, its tier map, and its held-out measures."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from orchestrator.concepts import TIER_RANK
from orchestrator.paths import SHARED_DATA
from orchestrator.predict.difficulty import (
    FORMAT_FEATURES,
    OPTION_FEATURES,
    RARITY_FEATURES,
    DifficultyModel,
    features,
    format_features,
    lexical_features,
    math_words,
    option_similarity,
    tiers_from_anchors,
    token_rarity,
    word_pieces,
)
from orchestrator.predict.offline import difficulty_eval
from orchestrator.predict.offline.difficulty_data import load_outcomes, outcomes_available

EASY = "What is the capital of France?\nA. Paris\nB. Rome\nC. Berlin\nD. Madrid\nAnswer:"
HARD = (
    "Statement 1 | Every group of order 42 has a normal subgroup of order 7. Statement 2 | "
    "Every group of order 42 has a normal subgroup of order 8.\nA. True, True\nB. False, "
    "False\nC. True, False\nD. False, True\nAnswer:"
)


@pytest.fixture(scope="module")
def model() -> DifficultyModel:
    return DifficultyModel.default()


def test_tier_success_covers_the_scale_and_rises_with_the_tier(model):
    ts = model.tier_success(EASY)
    assert set(ts) == set(TIER_RANK)
    values = [ts[t] for t in sorted(TIER_RANK, key=TIER_RANK.__getitem__)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values)


def test_a_hard_question_gets_a_lower_weak_tier_success_than_an_easy_one(model):
    assert model.tier_success(HARD)["medium"] < model.tier_success(EASY)["medium"]


def test_prediction_carries_tier_success_into_the_public_line(predictor):
    pred = predictor.predict({"messages": [{"role": "user", "content": HARD}]})
    assert pred.tier_success == predictor.difficulty.tier_success(HARD)
    line = pred.public()
    assert line["tier_success"] == pred.tier_success
    json.dumps(line)  # the CLI prints it


def test_anchors_are_kept_and_the_tiers_between_interpolated(model):
    ts = tiers_from_anchors({"weak": 0.5, "strong": 0.9}, model.meta)
    assert ts[model.meta.weak_tier] == pytest.approx(0.5, abs=1e-4)
    assert ts[model.meta.strong_tier] == pytest.approx(0.9, abs=1e-4)
    assert 0.5 < ts["large"] < 0.9 and ts["small"] < 0.5
    flat = tiers_from_anchors({"weak": 0.8, "strong": 0.7}, model.meta)  # never decreasing
    assert flat["frontier"] >= flat["medium"]


def test_format_features_read_a_multiple_choice_question_and_leave_free_text_alone():
    numeric = "How many moons has Mars?\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer:"
    shape = format_features(numeric)
    assert shape is not None and len(shape) == len(FORMAT_FEATURES)
    named = dict(zip(FORMAT_FEATURES, shape, strict=True))
    assert named["numeric_options"] == 1.0 and named["stem_question"] == 1.0
    assert dict(zip(FORMAT_FEATURES, format_features(HARD), strict=True))["true_false"] == 1.0
    free = "Write a haiku about autumn."
    assert format_features(free) is None
    center = np.ones(len(FORMAT_FEATURES))
    rarity = np.full(len(RARITY_FEATURES), 0.5)
    row = features(
        free, 1, center, rarity
    )  # free text: the format part is zero, whatever the centre
    expected = np.concatenate([lexical_features(free, 1), rarity, np.zeros_like(center)])
    assert np.array_equal(row, expected)
    shaped = features(numeric, 1, center, rarity)[-len(center) :]
    assert not np.array_equal(shaped, np.zeros_like(center))


def test_token_rarity_reads_rare_tokens_word_pieces_and_repeats():
    """Tokens 0-3: 0 and 1 common (weight 0.1), 2 and 3 rare (0.95), 3 a "##" piece."""
    weight = np.array([0.1, 0.1, 0.95, 0.95])
    piece = np.array([False, False, False, True])
    named = dict(
        zip(RARITY_FEATURES, token_rarity(np.array([0, 1, 2, 3]), weight, piece), strict=True)
    )
    assert named["mean_token_weight"] == pytest.approx(0.525)
    assert named["rare_token_share"] == 0.5 and named["word_piece_share"] == 0.25
    assert named["distinct_token_share"] == 1.0
    repeated = token_rarity(np.array([0, 0, 0, 0]), weight, piece)
    assert list(repeated) == pytest.approx([0.1, 0.0, 0.0, 0.25])
    assert list(token_rarity(np.array([], np.int64), weight, piece)) == [0.0] * 4


def test_token_rarity_equals_numpys_means():
    """The shares and the mean weight are `mean`'s, to the bit."""
    rng = np.random.default_rng(30)
    weight, piece = rng.uniform(0.0, 1.0, size=5000), rng.random(5000) < 0.2
    for size in (1, 2, 7, 130, 512, 3000):
        ids = rng.integers(0, 5000, size=size)
        w = weight[ids]
        expected = [w.mean(), (w > 0.9).mean(), piece[ids].mean(), len(set(ids.tolist())) / size]
        assert token_rarity(ids, weight, piece).tolist() == expected


def test_math_words_are_the_case_blind_search():
    """ASCII text is searched in its lower case: the same count as the case-blind pattern,
    whatever the case, and non-ASCII text (Kelvin sign, long s) still goes case-blind."""
    blind = re.compile(
        r"\b(?:calculate|compute|find|solve|how many|how much|what is the value|evaluate|"
        r"probability|derivative|integral|equation)\b",
        re.IGNORECASE,
    )
    rng = np.random.default_rng(30)
    pieces = ["CALCULATE", "Find", "how MANY", "what is the value", "solver", "xsolve", "_find",
              "Equation.", " ", "\n", "9", "-", "integral2", "Ho w", "prob"]  # fmt: skip
    texts = ["".join(rng.choice(pieces, size=n)) for n in rng.integers(0, 30, size=400)]
    texts += ["\u212aalculate, \u017folve it", "Find \u00e9quation: solve"]
    for text in texts:
        assert math_words(text) == len(blind.findall(text)), text


def test_word_pieces_marks_continuations():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(
        '{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], '
        '"normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, '
        '"decoder": null, "model": {"type": "WordPiece", "unk_token": "[UNK]", '
        '"continuing_subword_prefix": "##", "max_input_chars_per_word": 100, '
        '"vocab": {"[UNK]": 0, "play": 1, "##ing": 2, "ing": 3}}}'
    )
    assert list(word_pieces(tok)) == [False, False, True, False]
    ids = np.asarray(tok.encode("playing").ids)
    assert list(ids) == [1, 2]


def test_rare_vocabulary_lowers_the_weak_tier_success(model):
    """Same shape, the stem in everyday words or in rare technical terms."""
    plain = "What do you call a baby cat?\nA. kitten\nB. puppy\nC. calf\nD. foal\nAnswer:"
    rare = (
        "Which enzyme catalyses transamination of glutamate?\nA. aminotransferase\n"
        "B. decarboxylase\nC. isomerase\nD. synthetase\nAnswer:"
    )
    assert model.tier_success(rare)["medium"] < model.tier_success(plain)["medium"]


def test_option_similarity_reads_the_options_against_the_stem():
    """Token 0 (the stem) and token 1 (option A) point the same way, token 2 (option B) at a
    right angle: A matches the stem (cosine 1), B does not (0)."""
    text = "stem\nA. one\nB. two\n"
    ids, starts = np.array([0, 1, 2]), np.array([0, 8, 15])  # "stem", "one", "two"
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    row = option_similarity(text, ids, starts, vectors, np.ones(3))
    assert row is not None and len(row) == len(OPTION_FEATURES)
    named = dict(zip(OPTION_FEATURES, row, strict=True))
    assert named["option_stem_cosine_max"] == pytest.approx(1.0)
    assert named["option_stem_cosine_margin"] == pytest.approx(1.0)
    assert named["option_pair_cosine"] == pytest.approx(0.0, abs=1e-6)
    assert named["options_mean_stem_cosine"] == pytest.approx(2**-0.5)
    free = "Write a haiku about autumn."
    assert option_similarity(free, ids, starts, vectors, np.ones(3)) is None


def test_strong_share_routes_hardest_first():
    weak = np.array([1, 1, 0, 0], float)
    strong = np.array([1, 1, 1, 1], float)
    perfect = np.array([0.9, 0.8, 0.1, 0.2])
    backwards = 1 - perfect
    assert difficulty_eval.strong_share_needed(perfect, weak, strong) == 0.5
    assert difficulty_eval.strong_share_needed(backwards, weak, strong) == 1.0
    assert difficulty_eval.random_share_needed(weak, strong) == pytest.approx(0.9)
    assert difficulty_eval.auc(1 - perfect, 1 - weak) == 1.0


def test_ece_is_zero_when_calibrated_and_large_when_not():
    prob = np.array([0.25] * 4 + [0.75] * 4)
    outcome = np.array([1, 0, 0, 0, 1, 1, 1, 0], float)
    assert difficulty_eval.ece(prob, outcome) == pytest.approx(0.0)
    assert difficulty_eval.ece(1 - prob, outcome) == pytest.approx(0.5)


def test_ece_floor_is_what_sampling_alone_leaves_and_shrinks_with_more_prompts():
    """A calibrated p = 0.8 on n prompts: the floor is E|mean of n Bernoulli(0.8) - 0.8|,
    about sqrt(2 / pi) * sqrt(0.16 / n) (0.032 for 100 prompts, 0.010 for 1,000)."""
    small = difficulty_eval.ece_floor(np.full(100, 0.8))
    large = difficulty_eval.ece_floor(np.full(1000, 0.8))
    assert small == pytest.approx(0.032, abs=0.006)
    assert large == pytest.approx(0.010, abs=0.003)
    assert difficulty_eval.ece_floor(np.zeros(50)) == 0.0  # certain outcomes: nothing to draw


@pytest.mark.skipif(not outcomes_available(), reason=f"shared data absent: {SHARED_DATA}")
def test_outcomes_cover_mmlu_subjects_gsm8k_and_both_mt_bench_turns():
    outcomes = load_outcomes()
    by_source = {s: [o for o in outcomes if o.source == s] for s in ("mmlu", "gsm8k", "mt_bench")}
    assert len({o.subject for o in by_source["mmlu"]}) == 47
    assert len(by_source["mmlu"]) == 10_406 and len(by_source["gsm8k"]) == 1_319
    assert len(by_source["mt_bench"]) == 160
    second = [o for o in by_source["mt_bench"] if len(o.messages) == 3]
    assert len(second) == 80 and all(o.messages[1][1] for o in second)


def test_the_shipped_model_meets_its_held_out_targets(model):
    """The artifact's own figures, measured at fit time on folds that left whole MMLU
    subjects out (`orchestrator difficulty train`): AUC of "the weak model fails" >= 0.70,
    ECE <= 0.05, <= 50 % strong calls for 95 % of the strong model's accuracy."""
    mmlu = model.meta.evaluation["per_source"]["mmlu"]
    assert model.meta.embedding_layer == 1
    assert mmlu["auc_weak_fails"] >= 0.70
    assert mmlu["ece"] <= 0.05
    assert mmlu["strong_share_for_95"] <= 0.50


def test_featurize_averages_one_table_and_projects_the_options_on_another():
    """The embedding is the weighted mean of `static`'s rows; the option similarity's
    projection comes from `option_static` (MiniLM's output layer) when it is given."""
    import gzip

    from orchestrator.predict.difficulty import DEFAULT_DIFFICULTY_DIR
    from orchestrator.predict.offline import difficulty_fit as fit
    from orchestrator.predict.offline.difficulty_data import Outcome

    tokenizer = gzip.decompress((DEFAULT_DIFFICULTY_DIR / "tokenizer.json.gz").read_bytes())
    rng = np.random.default_rng(0)
    static = rng.normal(size=(30522, 40)).astype(np.float32)
    option_static = rng.normal(size=(30522, 40)).astype(np.float32)
    outcomes = [
        Outcome(f"mmlu:x:{i}", "mmlu", "x", (("user", text),), i % 2 == 0, True)
        for i, text in enumerate([EASY, HARD, "Write a haiku about autumn."])
    ]
    t = fit.featurize(outcomes, static, tokenizer.decode(), option_static)
    ids = t.token_ids[2]
    w = t.token_weight[ids]
    assert np.allclose(t.embedding[2], w @ static[ids] / w.sum())
    assert np.array_equal(t.option_vectors, fit.option_vectors(option_static))
    same = fit.featurize(outcomes, static, tokenizer.decode())
    assert np.array_equal(same.option_vectors, fit.option_vectors(static))
