"""Helpers shared by the predictor tests."""

from __future__ import annotations


def chat(text: str, **params) -> dict:
    """A one-turn OpenAI chat body."""
    return {"messages": [{"role": "user", "content": text}], **params}


def synthetic_examples(sources=("alpaca_eval",), prompts: int = 120):
    """Prompts whose answer length follows their wording: essays long, yes/no short; two
    answering models (one 3x more verbose); `sources` take turns."""
    from orchestrator.predict.offline.data import Example

    out = []
    for i in range(prompts):
        long = i % 2 == 0
        text = (
            f"Write a detailed essay number {i} about rivers."
            if long
            else f"Is {i} odd? Yes or no."
        )
        for model, factor in (("m-short", 1), ("m-long", 3)):
            words = (400 if long else 3) * factor + (i % 7)
            out.append(
                Example(
                    group=f"syn:{i}",
                    source=sources[i % len(sources)],
                    model=model,
                    messages=(("user", text),),
                    answer=" ".join(["word"] * words),
                    reasoning=int(not long),
                )
            )
    return out
