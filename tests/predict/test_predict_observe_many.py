"""`observe_many` (a group of settled requests in one store transaction) teaches exactly what
one `observe` after another does: the same calibrations and traffic rows."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.store import PredictorStore

PROFILES = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml").profiles
ASKS = [
    "Write a haiku about rivers.",
    "Explain how a hash map works, with an example in Python.",
    "List five tips for sleeping better.",
    "Translate 'good morning' into French.",
]


def _items(predictor: Predictor) -> list[tuple]:
    """Settled requests over two profiles, in order, with various answer lengths; every
    fourth one cut at the cap it was sent with (censored: no traffic row)."""
    items = []
    for i, ask in enumerate(ASKS * 3):
        profile = PROFILES[i % len(PROFILES)]
        n = 1 + i % 2
        body = {"messages": [{"role": "user", "content": ask}], "n": n}
        out = 7 + 13 * i
        cap = out // n if i % 4 == 0 else None
        items.append((profile, predictor.predict(body, profile), out, i % 3, cap))
    return items


def _rows(store: PredictorStore) -> list:
    return [dataclasses.replace(r, ts=0.0) for r in store.iter_records()]


def _same(a, b) -> bool:
    return a.__dict__.keys() == b.__dict__.keys() and all(
        (x == y).all() if hasattr(x, "all") else x == y
        for x, y in zip(a.__dict__.values(), b.__dict__.values(), strict=True)
    )


@pytest.mark.parametrize("group", [2, 5, 12])
def test_observe_many_equals_one_observe_after_another(artifact, tmp_path, group):
    one_by_one = Predictor(artifact, store=PredictorStore(tmp_path / "a.sqlite"))
    grouped = Predictor(artifact, store=PredictorStore(tmp_path / "b.sqlite"))
    items = _items(one_by_one)
    for item in items:
        one_by_one.observe(*item)
    for start in range(0, len(items), group):
        grouped.observe_many(items[start : start + group])
    for profile in PROFILES:
        assert grouped.calibration_for(profile) == one_by_one.calibration_for(profile)
    # what the other processes sharing the store read back is the same too
    assert grouped.store.load_calibrations() == one_by_one.store.load_calibrations()
    a, b = _rows(one_by_one.store), _rows(grouped.store)
    assert len(a) == len(b) == sum(1 for item in items if item[4] is None)
    assert all(_same(x, y) for x, y in zip(a, b, strict=True))


def test_observe_many_is_all_or_nothing(artifact, tmp_path):
    predictor = Predictor(artifact, store=PredictorStore(tmp_path / "s.sqlite"))
    items = _items(predictor)[:3]
    before = predictor.store.load_calibrations()
    bad = (*items[2][:2], -1, 0, None)  # a negative token count
    with pytest.raises(ValueError):
        predictor.observe_many([*items[:2], bad])
    assert predictor.store.load_calibrations() == before
    assert predictor.store.count_records() == 0
