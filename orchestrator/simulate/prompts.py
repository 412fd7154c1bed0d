"""Real prompt text for token-count-only traces (Azure, a usage ledger).

The pool holds the real prompts in ../shared/data, each with its token count (default
tokenizer) and the quality tier its difficulty needs. A request of C context tokens gets a
body built from them: a final user question drawn uniformly from the prompts no longer than C
and, until the body reaches 80 % of C, earlier conversation turns that fit in the rest (a real AlpacaEval
instruction and Llama-3.1-8B's real answer) in front, as a conversation service sends. Bodies are made per (length bucket, variant), so a
trace of any size featurizes at most `buckets * variants` distinct bodies.

Difficulty labels (the tier a request needs to be answered well):
- GSM8K: `medium` when Mixtral-8x7B answered it correctly, `large` when only GPT-4 did,
  `frontier` when neither did (RouteLLM's recorded correctness);
- MT-Bench: `medium` when Mixtral's judged score is >= 8 on both turns, else `large`;
- Arena-Hard v0.1 (hard prompts picked from Chatbot Arena): `large`;
- Arena-Hard v2: `frontier` for hard prompts, `large` for creative writing;
- AlpacaEval instructions (everyday requests): `medium`.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.paths import SHARED_DATA

_HISTORY_ANSWERS = "alpaca-eval/Meta-Llama-3.1-8B-Instruct-Turbo.json"
_TEMPLATE_TOKENS = 5  # chat-template overhead per message (role markers)


class PromptDataMissing(FileNotFoundError):
    """../shared/data (or the folder given) does not hold the prompt sets."""


@dataclass(frozen=True, slots=True)
class PoolPrompt:
    text: str
    tokens: int
    tier: str
    source: str


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    answer: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Body:
    """One request body of real text: what the predictor reads; `tier` = the need of its last
    question; `tokens` = its prompt length in the default tokenizer (estimate from parts)."""

    key: int
    body: dict[str, Any]
    tokens: int
    tier: str
    source: str


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _text(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def labelled_prompts(root: Path) -> list[tuple[str, str, str]]:
    """(text, tier, source) of every real prompt in the shared data."""
    out: list[tuple[str, str, str]] = []
    alpaca = json.loads((root / _HISTORY_ANSWERS).read_text(encoding="utf-8"))
    out += [(r["instruction"], "medium", "alpaca-eval") for r in alpaca]
    for q in _read_jsonl(root / "arena-hard-v0.1/question.jsonl"):
        out.append((_text(q["prompt"]), "large", "arena-hard-v0.1"))
    for q in _read_jsonl(root / "arena-hard-v2/question.jsonl"):
        tier = "frontier" if q.get("category") == "hard_prompt" else "large"
        out.append((_text(q["prompt"]), tier, "arena-hard-v2"))
    with (root / "routellm/gsm8k_responses.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            weak = row.get("mistralai/Mixtral-8x7B-Instruct-v0.1", "").strip().lower() == "true"
            strong = row.get("gpt-4-1106-preview", "").strip().lower() == "true"
            tier = "medium" if weak else ("large" if strong else "frontier")
            out.append((row["prompt"], tier, "gsm8k"))
    scores: dict[int, list[float]] = defaultdict(list)
    for j in _read_jsonl(root / "routellm/mt_bench_judgements.jsonl"):
        if "Mixtral" in j.get("model", ""):
            scores[int(j["question_id"])].append(float(j.get("score", 0)))
    for q in _read_jsonl(root / "routellm/mt_bench_question.jsonl"):
        s = scores.get(int(q["question_id"]), [])
        tier = "medium" if s and min(s) >= 8 else "large"
        out.append((q["turns"][0], tier, "mt-bench"))
    return out


class PromptPool:
    """The shared prompt sets, tokenized once; builds bodies of a wanted length."""

    def __init__(self, root: Path | None = None, *, seed: int = 0, variants: int = 16) -> None:
        root = Path(root) if root is not None else SHARED_DATA
        if not (root / "arena-hard-v0.1/question.jsonl").is_file():
            raise PromptDataMissing(f"prompt sets not found under {root} (see shared/README.md)")
        from orchestrator.predict.tokenizer import load_default_tokenizer

        tok = load_default_tokenizer()
        raw = labelled_prompts(root)
        counts = [len(e.ids) for e in tok.encode_batch([t for t, _, _ in raw])]
        self.prompts = [
            PoolPrompt(t, n + _TEMPLATE_TOKENS, tier, src)
            for (t, tier, src), n in zip(raw, counts, strict=True)
        ]
        alpaca = json.loads((root / _HISTORY_ANSWERS).read_text(encoding="utf-8"))
        pairs = [(r["instruction"], r["output"]) for r in alpaca]
        enc = tok.encode_batch([q + "\n" + a for q, a in pairs])
        self.history = [
            Turn(q, a, len(e.ids) + 2 * _TEMPLATE_TOKENS)
            for (q, a), e in zip(pairs, enc, strict=True)
        ]
        self._turn_order = np.argsort([t.tokens for t in self.history], kind="stable")
        self._turn_lens = np.array([self.history[i].tokens for i in self._turn_order])
        self._by_len = np.array(
            sorted(range(len(self.prompts)), key=lambda i: self.prompts[i].tokens)
        )
        self._lens = np.array([self.prompts[i].tokens for i in self._by_len])
        self.variants = variants
        self.seed = seed
        self._cache: dict[tuple[int, int], Body] = {}

    @staticmethod
    def bucket(tokens: int) -> int:
        """Log-spaced length bucket (~19 % wide)."""
        return int(round(math.log(max(tokens, 1)) * 6))

    def body_for(self, tokens: int, rng: np.random.Generator) -> Body:
        """A body of about `tokens` prompt tokens (one of `variants` per length bucket)."""
        b = self.bucket(tokens)
        v = int(rng.integers(self.variants))
        found = self._cache.get((b, v))
        if found is None:
            target = int(round(math.exp(b / 6)))
            found = self._build(target, np.random.default_rng([self.seed, b, v]), len(self._cache))
            self._cache[(b, v)] = found
        return found

    def _build(self, target: int, rng: np.random.Generator, key: int) -> Body:
        # the final question: any prompt no longer than the target (uniformly, so the sources
        # keep their shares at every length), else the shortest one
        fit = int(np.searchsorted(self._lens, target, side="right"))
        idx = int(self._by_len[int(rng.integers(fit))]) if fit else int(self._by_len[0])
        last = self.prompts[idx]
        total = last.tokens
        messages: list[dict[str, str]] = []
        while total < 0.8 * target:
            room = int(np.searchsorted(self._turn_lens, target - total, side="right"))
            if room == 0:  # no earlier turn fits the rest
                break
            turn = self.history[int(self._turn_order[int(rng.integers(room))])]
            messages += [
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": turn.answer},
            ]
            total += turn.tokens
        messages.append({"role": "user", "content": last.text})
        return Body(key, {"model": "auto", "messages": messages}, total, last.tier, last.source)

    @property
    def bodies(self) -> list[Body]:
        return list(self._cache.values())
