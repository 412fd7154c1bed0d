"""The featurization memo: predictions with it equal predictions without it, and it stays
within its bounds."""

from __future__ import annotations

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.predict.features import clear_token_cache
from orchestrator.predict.featurize_memo import FeaturizeMemo
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.request import parse_request

LONG = "Here is a log line that repeats, explain it: ERROR disk full at /var. " * 400


def _chat(*texts: str, **extra) -> dict:
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    return {"model": "m", "messages": messages, **extra}


BODIES = [
    _chat("Hi"),
    _chat("Write a 2,000-word essay on why rivers in Europe flow north or south."),
    _chat("Summarise in one sentence why rivers flow.", max_tokens=7),
    _chat("Summarise in one sentence why rivers flow.", n=3),
    _chat("Summarise in one sentence why rivers flow.", reasoning_effort="high"),
    _chat("Solve 12*7+3 and show each step.", "12*7 = 84, plus 3 is 87.", "Now 13*7+3?"),
    {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Which is larger, 9.9 or 9.11?"},
        ],
    },
    {
        "model": "m",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    },
    {"model": "m", "prompt": "Once upon a time", "max_tokens": 40},
    {"model": "m", "prompt": [1, 2, 3, 4, 5, 6], "max_tokens": 9},
    _chat("Q: Which is a mammal?\nA. shark\nB. whale\nC. trout\nD. eel"),
    _chat(LONG),
]


PROFILES = [None, *load_catalog(PROJECT_ROOT / "deployments" / "local.yaml").profiles]


def test_predictions_equal_with_and_without_the_memo(artifact):
    """The fixed set above, each body twice (the second a hit), across calls that differ
    only in caps, n or reasoning, on no profile and on each of the local catalog's (their
    own tokenizers): every prediction equals the memo-less one."""
    plain = Predictor(artifact, store=None, memo=FeaturizeMemo(0))
    memo = FeaturizeMemo()
    memoized = Predictor(artifact, store=None, memo=memo)
    for _ in range(2):
        for body in BODIES:
            for target in PROFILES:
                assert memoized.predict(body, target) == plain.predict(body, target), body
    assert len(plain.memo) == 0
    assert len(memo) == len(BODIES) - 2  # three bodies share one text


def test_a_hit_does_not_share_tier_success_with_earlier_predictions(artifact):
    predictor = Predictor(artifact, store=None)
    first = predictor.predict(BODIES[1])
    first.tier_success.clear()
    assert predictor.predict(BODIES[1]).tier_success


def test_memo_stays_within_entries_and_characters():
    memo = FeaturizeMemo(entries=3, chars=1_600)
    model = object()
    for i in range(10):
        parsed = parse_request(_chat(f"question {i} " + "x" * 80))
        memo.put(model, memo.key(parsed), i)
    assert len(memo) == 3
    assert memo.get(model, memo.key(parse_request(_chat("question 9 " + "x" * 80)))) == 9
    assert memo.get(model, memo.key(parse_request(_chat("question 0 " + "x" * 80)))) is None
    assert memo.key(parse_request(_chat("y" * 101))) is None  # over chars // 16
    small = FeaturizeMemo(entries=100, chars=1_600)
    for i in range(30):
        small.put(model, small.key(parse_request(_chat(f"{i:03d}" + "z" * 90))), i)
    assert small.chars <= 1_600 and len(small) == 1_600 // 93


def test_another_model_empties_the_memo():
    memo = FeaturizeMemo()
    key = memo.key(parse_request(_chat("Hi")))
    old, new = object(), object()
    memo.put(old, key, "old")
    assert memo.get(new, key) is None
    memo.put(new, key, "new")
    assert memo.get(old, key) is None and memo.get(new, key) == "new" and len(memo) == 1


def test_clearing_the_token_cache_empties_every_memo(artifact):
    """What latency benchmarks call before each timed prediction: no memo answers it."""
    predictor = Predictor(artifact, store=None)
    predictor.predict(BODIES[1])
    assert len(predictor.memo) == 1
    clear_token_cache()
    assert len(predictor.memo) == 0 and predictor.memo.chars == 0
