"""What the tokenizer's totality check costs (issue 15).

`fast_encoder` now checks each text for bytes the vocabulary has no single-byte token for (and
for lone surrogates) before using tiktoken. This times, on the same texts in one run, the
check-guarded encoder against tiktoken alone and against `tokenizers`, and checks that the ids
are identical. Texts: AlpacaEval instructions and answers from ../shared/data when present,
else generated prose.

    python3 bench/tokenizer_totality.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from orchestrator.paths import SHARED_DATA
from orchestrator.predict.tokenizer import fast_encoder, load_default_tokenizer


def _texts() -> tuple[list[str], str]:
    path = SHARED_DATA / "alpaca-eval" / "gpt-4o-2024-05-13.json"
    if path.is_file():
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [t for r in rows for t in (r["instruction"], r["output"])], str(path.name)
    rng = random.Random(0)
    words = [
        "the",
        "a",
        "lake",
        "river",
        "essay",
        "write",
        "code",
        "def",
        "return",
        "ünïcödé",
        "中文",
        "🙂",
        "12345",
    ]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 800))) for _ in range(2000)], (
        "generated"
    )


def _time(fn, texts: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    texts, source = _texts()
    tok = load_default_tokenizer()
    guarded = fast_encoder(tok)
    import tiktoken  # noqa: F401 - the bare encoder is the one fast_encoder wraps

    bare = guarded.__closure__  # the tiktoken Encoding is captured by the guarded encoder
    enc = next(c.cell_contents for c in bare if type(c.cell_contents).__name__ == "Encoding")

    def bare_tiktoken(text: str) -> list[int]:
        return enc.encode(text, allowed_special="all")

    def exact(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids

    assert all(guarded(t) == exact(t) for t in texts[:500])
    chars = sum(len(t) for t in texts)
    rows = [
        ("tiktoken alone (no check)", _time(bare_tiktoken, texts, args.repeat)),
        ("fast_encoder (checked)", _time(guarded, texts, args.repeat)),
        ("tokenizers (exact)", _time(exact, texts, args.repeat)),
    ]
    print(f"{len(texts)} texts ({source}), {chars / 1e6:.2f} M chars, best of {args.repeat}")
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    base = rows[0][1]
    for name, seconds in rows:
        print(f"  {name:28s} {seconds * 1e3:8.1f} ms  {seconds / base:5.2f}x")


if __name__ == "__main__":
    main()
