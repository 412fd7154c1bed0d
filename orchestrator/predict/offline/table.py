"""The training table: every unique request featurized once, answered rows pointing at it.

Featurizing the shared data (tokenizing ~3,500 prompts and ~20,000 answers) takes most of a
minute, so `cached_table` keeps the result under `cache_dir()/predictor/`, keyed by the data
files (names, sizes, mtimes) and the source of every module that shapes a feature: editing
a feature invalidates the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import paths
from orchestrator.predict import features as features_module
from orchestrator.predict import phrases as phrases_module
from orchestrator.predict import request as request_module
from orchestrator.predict import tokenizer as tokenizer_module
from orchestrator.predict.artifact import feature_schema
from orchestrator.predict.features import (
    FEATURE_NAMES,
    MODEL_INPUTS,
    dense_features,
    request_phrase_ids,
    tokenize_request,
)
from orchestrator.predict.offline import data as data_module
from orchestrator.predict.offline.data import Example, load_examples
from orchestrator.predict.request import parse_request
from orchestrator.predict.store import TrafficRecord
from orchestrator.predict.tokenizer import load_default_tokenizer

log = logging.getLogger(__name__)
TRAFFIC_SOURCE = "traffic"


@dataclass
class Table:
    """Unique requests (R) and answered rows (N) pointing at them.

    Invariants: every R-indexed list has R entries; every N-indexed array has N entries and
    `row_request` < R. Traffic rows have source "traffic", model "traffic:<profile>", no body.
    """

    vectors: np.ndarray  # R x F dense features
    lexical_ids: list[np.ndarray]  # R
    phrase_ids: list[np.ndarray]  # R
    groups: list[str]  # R
    reasoning: np.ndarray  # R weak labels (-1: unknown, traffic)
    requests: list[dict[str, Any] | None]  # R bodies (None for traffic)
    row_request: np.ndarray  # N
    row_tokens: np.ndarray  # N output tokens
    row_model: np.ndarray  # N answering model / traffic profile
    row_source: np.ndarray  # N
    fixed_offsets: dict[str, float] = field(default_factory=dict)  # models with a given offset

    @property
    def row_y(self) -> np.ndarray:
        return np.log1p(self.row_tokens.astype(np.float64))

    @property
    def request_source(self) -> np.ndarray:
        """The source of each request (R)."""
        out = np.empty(len(self.groups), dtype=object)
        out[self.row_request] = self.row_source
        return out.astype(str)

    def subset_rows(self, keep: np.ndarray) -> Table:
        """The same requests with only the rows where `keep` is True."""
        return replace(
            self,
            row_request=self.row_request[keep],
            row_tokens=self.row_tokens[keep],
            row_model=self.row_model[keep],
            row_source=self.row_source[keep],
        )

    def without_sources(self, names: Iterable[str]) -> Table:
        """The table with every request and row of the sources `names` removed (nothing of
        them left: no text, no weak label), the rest renumbered in their order."""
        drop = set(names)
        gone = np.isin(self.row_source, list(drop))
        keep_req = np.ones(len(self.groups), dtype=bool)
        keep_req[self.row_request[gone]] = False
        keep_req[self.row_request[~gone]] = True  # a request answered in a kept source stays
        new_index = np.cumsum(keep_req) - 1
        picked = np.where(keep_req)[0]
        rows = self.subset_rows(~gone)
        return replace(
            rows,
            vectors=self.vectors[keep_req],
            lexical_ids=[self.lexical_ids[i] for i in picked],
            phrase_ids=[self.phrase_ids[i] for i in picked],
            groups=[self.groups[i] for i in picked],
            reasoning=self.reasoning[keep_req],
            requests=[self.requests[i] for i in picked],
            row_request=new_index[rows.row_request],
        )


def answer_tokens(answers: list[str], tok: Any = None) -> np.ndarray:
    """Output tokens of each answer text: its count in the default tokenizer, no special
    tokens (what the predictor is trained to predict)."""
    tok = tok or load_default_tokenizer()
    encoded = tok.encode_batch_fast(answers, add_special_tokens=False)
    return np.asarray([len(e.ids) for e in encoded], dtype=np.int64)


def featurize_examples(examples: list[Example]) -> Table:
    """Featurize offline examples (one featurization per unique request)."""
    tok = load_default_tokenizer()
    index: dict[tuple[str, int], int] = {}
    vectors: list[np.ndarray] = []
    lex_ids: list[np.ndarray] = []
    phrase_sets: list[np.ndarray] = []
    groups: list[str] = []
    labels: list[int] = []
    bodies: list[dict[str, Any] | None] = []
    row_req: list[int] = []
    for ex in examples:
        key = (ex.group, len(ex.messages))
        if key not in index:
            body = ex.request()
            parsed = parse_request(body)
            counted = tokenize_request(parsed, tok)
            index[key] = len(vectors)
            vectors.append(dense_features(parsed, counted))
            lex_ids.append(counted.lexical_ids)
            phrase_sets.append(request_phrase_ids(parsed))
            groups.append(ex.group)
            labels.append(ex.reasoning)
            bodies.append(body)
        row_req.append(index[key])
    width = len(FEATURE_NAMES)
    return Table(
        vectors=np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, width)),
        lexical_ids=lex_ids,
        phrase_ids=phrase_sets,
        groups=groups,
        reasoning=np.asarray(labels, dtype=np.int64),
        requests=bodies,
        row_request=np.asarray(row_req, dtype=np.int64),
        row_tokens=answer_tokens([ex.answer for ex in examples], tok),
        row_model=np.asarray([ex.model for ex in examples]),
        row_source=np.asarray([ex.source for ex in examples]),
    )


def add_traffic(
    table: Table,
    traffic: Iterable[TrafficRecord],
    traffic_offsets: dict[str, float] | None = None,
) -> Table:
    """The table plus one request and one row per traffic record of the current layout."""
    schema = feature_schema(MODEL_INPUTS)
    vectors = [table.vectors]
    lex, phr = list(table.lexical_ids), list(table.phrase_ids)
    groups, labels = list(table.groups), list(table.reasoning)
    bodies = list(table.requests)
    row_req, tokens = list(table.row_request), list(table.row_tokens)
    models, sources = list(table.row_model), list(table.row_source)
    fixed = dict(table.fixed_offsets)
    skipped = 0
    for i, rec in enumerate(traffic):
        if rec.feature_schema != schema or len(rec.features) != len(FEATURE_NAMES):
            skipped += 1  # recorded under another feature layout
            continue
        row_req.append(len(groups))
        vectors.append(np.asarray(rec.features, dtype=np.float32).reshape(1, -1))
        lex.append(np.asarray(rec.lexical_ids, dtype=np.int32))
        phr.append(np.asarray(rec.phrase_ids, dtype=np.int32))
        groups.append(f"traffic:{i}")
        labels.append(-1)
        bodies.append(None)
        tokens.append(int(rec.output_tokens))
        name = f"traffic:{rec.profile}"
        models.append(name)
        sources.append(TRAFFIC_SOURCE)
        fixed[name] = (traffic_offsets or {}).get(rec.profile, 0.0)
    if skipped:
        log.warning("skipped %d traffic records of another feature layout", skipped)
    return Table(
        vectors=np.concatenate(vectors).astype(np.float32),
        lexical_ids=lex,
        phrase_ids=phr,
        groups=groups,
        reasoning=np.asarray(labels, dtype=np.int64),
        requests=bodies,
        row_request=np.asarray(row_req, dtype=np.int64),
        row_tokens=np.asarray(tokens, dtype=np.int64),
        row_model=np.asarray(models),
        row_source=np.asarray(sources),
        fixed_offsets=fixed,
    )


def build_table(
    examples: list[Example],
    traffic: Iterable[TrafficRecord] = (),
    traffic_offsets: dict[str, float] | None = None,
) -> Table:
    """Featurize examples and append traffic rows."""
    return add_traffic(featurize_examples(examples), traffic, traffic_offsets)


def table_cache_key(root: Path) -> str:
    digest = hashlib.sha256()
    for module in (features_module, phrases_module, request_module, tokenizer_module, data_module):
        digest.update(Path(module.__file__ or "").read_bytes())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def cached_table(root: Path = paths.SHARED_DATA) -> Table:
    """The featurized shared data, from the cache when the data and feature code are unchanged."""
    folder = paths.cache_dir() / "predictor"
    path = folder / f"table-{table_cache_key(root)}.pkl"
    if path.is_file():
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            log.warning("ignoring unreadable table cache %s (%s)", path, exc)
    table = featurize_examples(load_examples(root))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("table-*.pkl"):
        old.unlink(missing_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent builders never share a file
    with tmp.open("wb") as fh:
        pickle.dump(table, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return table
