"""Per-prompt outcomes of a weak and a strong model, read from the shared RouteLLM data.

Each `Outcome` is one prompt (the text the model was sent), where it comes from (`source`:
mmlu, gsm8k, mt_bench; `subject`: the MMLU subject, else the source, or MT-Bench's category),
and whether the weak model (Mixtral-8x7B-Instruct) and the strong model (GPT-4-1106) answered
it well: MMLU and GSM8K correctness as RouteLLM recorded it; MT-Bench: the GPT-4 judge's score
>= `MT_BENCH_GOOD` (each turn is a prompt; turn 2 carries turn 1 as history).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.paths import SHARED_DATA

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
MT_BENCH_GOOD = 8  # judge score (1-10) at or above which an answer counts as good
DIFFICULTY_SOURCES = ("mmlu", "gsm8k", "mt_bench")


@dataclass(frozen=True)
class Outcome:
    """One prompt and whether each model answered it well."""

    group: (
        str  # prompt identity ("mmlu:astronomy:12", "mt_bench:81"): both MT-Bench turns share one
    )
    source: str
    subject: str
    messages: tuple[tuple[str, str], ...]  # (role, text)
    weak_ok: bool
    strong_ok: bool

    def request(self) -> dict:
        """The OpenAI chat body this prompt stands for."""
        return {"messages": [{"role": r, "content": t} for r, t in self.messages]}

    @property
    def text(self) -> str:
        """The last user message (what the difficulty model reads)."""
        return next(t for r, t in reversed(self.messages) if r == "user")


def routellm_dir(root: Path = SHARED_DATA) -> Path:
    return root / "routellm"


def outcomes_available(root: Path = SHARED_DATA) -> bool:
    return (routellm_dir(root) / "mmlu").is_dir()


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


def _mmlu(folder: Path) -> list[Outcome]:
    out = []
    for path in sorted(folder.glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        with path.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                out.append(
                    Outcome(
                        group=f"mmlu:{subject}:{i}",
                        source="mmlu",
                        subject=subject,
                        messages=(("user", row["prompt"]),),
                        weak_ok=_flag(row[WEAK_MODEL]),
                        strong_ok=_flag(row[STRONG_MODEL]),
                    )
                )
    return out


def _gsm8k(path: Path) -> list[Outcome]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            Outcome(
                group=f"gsm8k:{i}",
                source="gsm8k",
                subject="gsm8k",
                messages=(("user", row["prompt"]),),
                weak_ok=_flag(row[WEAK_MODEL]),
                strong_ok=_flag(row[STRONG_MODEL]),
            )
            for i, row in enumerate(csv.DictReader(fh))
        ]


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    i += len(start)
    j = text.find(end, i)
    return text[i : j if j >= 0 else len(text)].strip()


def _mt_bench(folder: Path) -> list[Outcome]:
    questions = {}
    for line in (folder / "mt_bench_question.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            questions[q["question_id"]] = q
    scores: dict[tuple[int, int, str], float] = {}
    first_answer: dict[int, str] = {}
    for line in (folder / "mt_bench_judgements.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        turn = int(j.get("turn", 1))
        model = j["model"]
        scores[(j["question_id"], turn, model)] = float(j["score"])
        if turn == 2 and model == STRONG_MODEL:
            answer = _between(j["user_prompt"], "### Assistant A:\n", "\n\n### User:")
            first_answer.setdefault(j["question_id"], answer)
    out = []
    for qid, q in sorted(questions.items()):
        turns = q["turns"]
        for turn in (1, 2):
            weak = scores.get((qid, turn, WEAK_MODEL))
            strong = scores.get((qid, turn, STRONG_MODEL))
            if weak is None or strong is None or len(turns) < turn:
                continue
            msgs: tuple[tuple[str, str], ...] = (("user", turns[0]),)
            if turn == 2:
                msgs = (*msgs, ("assistant", first_answer.get(qid, "")), ("user", turns[1]))
            out.append(
                Outcome(
                    group=f"mt_bench:{qid}",
                    source="mt_bench",
                    subject=f"mt_bench_{q.get('category', 'other')}",
                    messages=msgs,
                    weak_ok=weak >= MT_BENCH_GOOD,
                    strong_ok=strong >= MT_BENCH_GOOD,
                )
            )
    return out


def load_outcomes(root: Path = SHARED_DATA) -> list[Outcome]:
    """Every prompt with outcomes: MMLU (47 subjects), GSM8K, MT-Bench (both turns)."""
    folder = routellm_dir(root)
    return [
        *_mmlu(folder / "mmlu"),
        *_gsm8k(folder / "gsm8k_responses.csv"),
        *_mt_bench(folder),
    ]
