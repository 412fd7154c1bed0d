"""Read the shared training data into (request, answering model, answer) examples.

Sources under `SHARED_DATA` (see its README), one name each (`SOURCES`): alpaca_eval answers
of 17 models to 805 instructions; arena-hard v2 prompts with o3-mini answers; arena-hard v0.1
(500 Chatbot Arena prompts answered by three GPT models); RouteLLM GSM8K (Mixtral and
GPT-4-1106 answers) and MT-Bench (both turns of both models, read from the judge prompts).
Each example carries a `group` (the prompt's identity) so splits can be made by prompt.
`reasoning` is a weak label from the source's own category (math, coding, reasoning).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.paths import SHARED_DATA

SOURCES = ("alpaca_eval", "arena_hard", "arena_hard_v01", "gsm8k", "mt_bench")
_REASONING_MT_BENCH = {"math", "reasoning", "coding"}
_REASONING_ARENA = {"math", "coding"}
# one name per answering model across sources
_MODEL_ALIASES = {"gpt4_1106_preview": "gpt-4-1106-preview"}


def _model_name(raw: str) -> str:
    name = raw.split("/")[-1]
    return _MODEL_ALIASES.get(name, name)


@dataclass(frozen=True)
class Example:
    """One answered request: chat messages, who answered, and the answer text."""

    group: str  # prompt identity, e.g. "alpaca:17"; both MT-Bench turns share a group
    source: str
    model: str
    messages: tuple[tuple[str, str], ...]  # (role, text)
    answer: str
    reasoning: int  # weak label: 1 math/coding/reasoning, 0 other, -1 unknown (no category)

    def request(self) -> dict:
        """The OpenAI chat body this example stands for."""
        return {"messages": [{"role": r, "content": t} for r, t in self.messages]}


def data_available(root: Path = SHARED_DATA) -> bool:
    return (root / "alpaca-eval").is_dir() and (root / "arena-hard-v2").is_dir()


def _alpaca(root: Path) -> Iterator[Example]:
    folder = root / "alpaca-eval"
    for path in sorted(folder.glob("*.json")):
        rows = json.loads(path.read_text(encoding="utf-8"))
        for i, row in enumerate(rows):
            yield Example(
                group=f"alpaca:{i}",
                source="alpaca_eval",
                model=_model_name(path.stem),
                messages=(("user", row["instruction"]),),
                answer=row["output"] or "",
                reasoning=0,
            )


def _arena(root: Path) -> Iterator[Example]:
    folder = root / "arena-hard-v2"
    questions = {}
    with (folder / "question.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            questions[q["uid"]] = q
    for path in sorted(folder.glob("answer_*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                a = json.loads(line)
                q = questions.get(a["uid"])
                if q is None:
                    continue
                content = a["messages"][-1]["content"]
                answer = content.get("answer", "") if isinstance(content, dict) else str(content)
                yield Example(
                    group=f"arena:{a['uid']}",
                    source="arena_hard",
                    model=_model_name(a["model"]),
                    messages=(("user", q["prompt"]),),
                    answer=answer,
                    reasoning=int(q["subcategory"] in _REASONING_ARENA),
                )


def _arena_v01(root: Path) -> Iterator[Example]:
    folder = root / "arena-hard-v0.1"
    if not folder.is_dir():
        return
    prompts = {}
    with (folder / "question.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            prompts[q["uid"]] = q["prompt"]
    for path in sorted(folder.glob("answer_*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                a = json.loads(line)
                prompt = prompts.get(a["uid"])
                if prompt is None:
                    continue
                content = a["messages"][1]["content"]
                answer = content.get("answer", "") if isinstance(content, dict) else str(content)
                yield Example(
                    group=f"arena01:{a['uid']}",
                    source="arena_hard_v01",
                    model=_model_name(a["model"]),
                    messages=(("user", prompt),),
                    answer=answer or "",
                    reasoning=-1,  # no category: not a weak label either way
                )


def _gsm8k(root: Path) -> Iterator[Example]:
    path = root / "routellm" / "gsm8k_responses.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        models = [
            c[: -len("_response")] for c in reader.fieldnames or [] if c.endswith("_response")
        ]
        for i, row in enumerate(reader):
            for model in models:
                yield Example(
                    group=f"gsm8k:{i}",
                    source="gsm8k",
                    model=_model_name(model),
                    messages=(("user", row["prompt"]),),
                    answer=row[f"{model}_response"] or "",
                    reasoning=1,
                )


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start) + len(start)
    return text[i : text.index(end, i)]


def _mt_bench(root: Path) -> Iterator[Example]:
    folder = root / "routellm"
    questions = {}
    with (folder / "mt_bench_question.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            questions[q["question_id"]] = q
    with (folder / "mt_bench_judgements.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            j = json.loads(line)
            if not j["judge"][1].endswith("multi-turn"):
                continue  # the multi-turn judge prompt holds both answers
            q = questions[j["question_id"]]
            convo = _between(
                j["user_prompt"],
                "<|The Start of Assistant A's Conversation with User|>",
                "<|The End of Assistant A's Conversation with User|>",
            )
            parts = convo.split("### Assistant A:")
            if len(parts) != 3:
                continue
            first = parts[1].split("### User:")[0].strip()
            second = parts[2].strip()
            turn1, turn2 = q["turns"][0], q["turns"][1]
            model = _model_name(j["model"])
            label = int(q["category"] in _REASONING_MT_BENCH)
            group = f"mt_bench:{j['question_id']}"
            yield Example(group, "mt_bench", model, (("user", turn1),), first, label)
            yield Example(
                group,
                "mt_bench",
                model,
                (("user", turn1), ("assistant", first), ("user", turn2)),
                second,
                label,
            )


_READERS = {
    "alpaca_eval": _alpaca,
    "arena_hard": _arena,
    "arena_hard_v01": _arena_v01,
    "gsm8k": _gsm8k,
    "mt_bench": _mt_bench,
}


def load_examples(root: Path = SHARED_DATA, sources: Iterable[str] = SOURCES) -> list[Example]:
    """The examples of `sources` (default all), in a fixed order (deterministic training)."""
    if not data_available(root):
        raise FileNotFoundError(f"shared training data not found under {root}")
    wanted = set(sources)
    unknown = sorted(wanted - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; choose from {SOURCES}")
    out: list[Example] = []
    for name in SOURCES:
        if name in wanted:
            out.extend(_READERS[name](root))
    return out
