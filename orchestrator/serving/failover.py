"""Engine failure: which profiles are down, and carrying a stream across to another engine.

A profile engine that fails under a request is marked down at once (the router sees it as
unhealthy from the next request on, long before Ray's own health check restarts it) and comes
back when its deployment answers a health check again (`ProfileHealth`; the ingress probes).

A stream whose engine dies after it has sent output is continued elsewhere, as NVIDIA
Dynamo's request migration does: the continuation is a completions request on another
profile serving the same model, whose prompt is the original prompt's token ids followed by
the token ids already sent (the engine is always asked for them: `return_token_ids`), with
the same sampling settings and the token budget that is left. Its chunks are rewritten into
the original stream's shape (chat deltas or completion text, the original id, model and
usage counted from the start of the request), so the client sees one stream without a gap or
a repeat. Token-exact for greedy decoding; sampled streams continue from the same tokens
but draw new random numbers.

Pure except `ProfileHealth`'s clock. Invariants:
- `engine_failed` is True only for server-side failures (exceptions, 5xx error items); a
  client error (4xx) never marks a profile down;
- `continuation_body` is only built for streams `migratable` accepts (one choice, no
  structured output, no tools, no logprobs, no penalties that count generated tokens).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.request.spec import RequestSpec

# the sampling settings a continuation keeps (vLLM's chat and completion requests share them)
CARRIED = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "include_stop_str_in_output",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "logit_bias",
    "allowed_token_ids",
    "bad_words",
    "user",
    "priority",
)
# fields whose effect depends on what was generated before the cut (or on the engine's
# parsers): a stream using them is ended with an error event instead of migrated
NOT_MIGRATABLE = (
    "tools",
    "response_format",
    "structured_outputs",
    "logprobs",
    "top_logprobs",
    "prompt_logprobs",
    "echo",
    "suffix",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "use_beam_search",
)


def engine_failed(item: Any) -> bool:
    """Whether an exception or a response item is the engine failing (not the client)."""
    if isinstance(item, BaseException):
        return not isinstance(item, StopAsyncIteration | GeneratorExit)
    error = getattr(item, "error", None)
    if error is not None and type(item).__name__ == "ErrorResponse":
        code = getattr(error, "code", None)
        return isinstance(code, int) and code >= 500
    if isinstance(item, dict) and isinstance(item.get("error"), dict):
        code = item["error"].get("code")
        return not (isinstance(code, int) and 400 <= code < 500)
    return False


def error_event(message: str, *, code: str = "engine_failed", status: int = 503) -> str:
    """An OpenAI-style error event that ends a stream the ingress could not complete."""
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


@dataclass
class ProfileHealth:
    """Profiles the ingress saw fail, until their engine passes a health check again.

    Invariant: a profile is down from `mark_down` until `mark_up`; `probe_due` spaces the
    health probes of a down profile by `probe_interval_s`."""

    probe_interval_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _down: dict[str, tuple[float, str]] = field(default_factory=dict)
    _probed: dict[str, float] = field(default_factory=dict)

    def mark_down(self, profile: str, reason: str) -> bool:
        """Mark `profile` down; True when it was up before."""
        fresh = profile not in self._down
        if fresh:
            self._down[profile] = (self.clock(), reason)
            self._probed[profile] = self.clock()
        return fresh

    def mark_up(self, profile: str) -> None:
        self._down.pop(profile, None)
        self._probed.pop(profile, None)

    def is_down(self, profile: str) -> bool:
        return profile in self._down

    def down(self) -> dict[str, dict[str, Any]]:
        """`{profile: {"since_s": seconds down, "reason": ...}}` for status endpoints."""
        now = self.clock()
        return {
            name: {"since_s": round(now - since, 1), "reason": reason}
            for name, (since, reason) in self._down.items()
        }

    def probe_due(self) -> list[str]:
        """Down profiles whose next health probe is due (and notes that it is being made)."""
        now = self.clock()
        due = [p for p, at in self._probed.items() if now - at >= self.probe_interval_s]
        for p in due:
            self._probed[p] = now
        return due


def migratable(spec: RequestSpec, body: Mapping[str, Any]) -> bool:
    """Whether a stream of this request can be carried across token-exactly (one choice, as
    the spec reads `n`; none of the fields in `NOT_MIGRATABLE`)."""
    if spec.choices > 1:
        return False
    return not any(body.get(key) for key in NOT_MIGRATABLE)


@dataclass
class StreamProgress:
    """What one stream has produced so far, from the engine's token ids (choice 0)."""

    prompt_token_ids: list[int] | None = None
    generated_token_ids: list[int] = field(default_factory=list)
    text_sent: bool = False
    finished: bool = False

    def add(self, chunk: Mapping[str, Any]) -> None:
        prompt = chunk.get("prompt_token_ids")
        if isinstance(prompt, list) and self.prompt_token_ids is None:
            self.prompt_token_ids = [int(t) for t in prompt]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("prompt_token_ids") and self.prompt_token_ids is None:
                self.prompt_token_ids = [int(t) for t in choice["prompt_token_ids"]]
            ids = choice.get("token_ids")
            if isinstance(ids, list):
                self.generated_token_ids.extend(int(t) for t in ids)
            if choice.get("finish_reason"):
                self.finished = True


def continuation_body(
    engine_body: Mapping[str, Any],
    progress: StreamProgress,
    *,
    max_tokens: int | None,
    target_profile: str,
    max_model_len: int,
    request_id: str,
) -> dict[str, Any] | None:
    """The completions request that continues a cut stream on `target_profile` (None when it
    cannot: no prompt ids, or no token budget left). `max_tokens`: the cap the stream was sent
    with (the plan's, `Routed.max_tokens`; None: the context is the only bound)."""
    if progress.prompt_token_ids is None:
        return None
    prompt = progress.prompt_token_ids + progress.generated_token_ids
    done = len(progress.generated_token_ids)
    room = max_model_len - len(prompt)
    left = (max_tokens - done) if max_tokens is not None else room
    left = min(left, room)
    if left < 1:
        return None
    body: dict[str, Any] = {
        key: engine_body[key] for key in CARRIED if engine_body.get(key) is not None
    }
    min_tokens = engine_body.get("min_tokens")
    if isinstance(min_tokens, int) and min_tokens > done:
        body["min_tokens"] = min_tokens - done
    body.update(
        model=target_profile,
        prompt=prompt,
        max_tokens=left,
        stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
        return_token_ids=True,
        request_id=request_id,
    )
    return body


@dataclass
class ChunkRewriter:
    """Rewrites a continuation's completion chunks into the original stream's shape.

    `endpoint` is the original's ("chat" or "completions"); `prior_output` the completion
    tokens sent before the cut; `prompt_tokens` the original prompt's count (what the client's
    usage shows)."""

    endpoint: str
    stream_id: str | None
    created: int | None
    prior_output: int
    prompt_tokens: int
    show_token_ids: bool = False

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict(chunk)
        if self.stream_id is not None:
            out["id"] = self.stream_id
        if self.created is not None:
            out["created"] = self.created
        out.pop("prompt_token_ids", None)
        choices = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            c: dict[str, Any] = {"index": choice.get("index", 0)}
            if self.endpoint == "chat":
                out["object"] = "chat.completion.chunk"
                text = choice.get("text")
                c["delta"] = {"content": text} if text else {}
                c["logprobs"] = None
            else:
                c["text"] = choice.get("text", "")
                c["logprobs"] = choice.get("logprobs")
            c["finish_reason"] = choice.get("finish_reason")
            if choice.get("stop_reason") is not None:
                c["stop_reason"] = choice["stop_reason"]
            if self.show_token_ids and choice.get("token_ids") is not None:
                c["token_ids"] = choice["token_ids"]
            choices.append(c)
        out["choices"] = choices
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            completion = self.prior_output + int(usage.get("completion_tokens") or 0)
            out["usage"] = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
            }
        return out


def other_profiles(
    family: str, failed: Sequence[str], profiles: Sequence[Any], is_down: Callable[[str], bool]
) -> list[Any]:
    """Profiles serving `family` that have not failed this request and are not down."""
    return [
        p
        for p in profiles
        if p.served_model_name == family and p.name not in failed and not is_down(p.name)
    ]
