"""A stub engine for LOAD TESTS of the control plane: no model, answers at a configured pace.

`StubEngine` implements ray.serve.llm's engine protocol and is injected into `LLMServer` through
its `engine_cls` constructor argument, so a stub profile is deployed exactly like a vLLM profile
(same `LLMConfig`, placement, Serve options, `ProfileServer`, streaming batcher); only the engine
differs. A catalog profile selects it with `stub_engine:` (orchestrator.catalog.schema
`StubEngineSpec`); `deployments/stub.yaml` is such a catalog. Never a default: it serves filler
text.

What it sends, as vLLM's OpenAI layer does (vllm/entrypoints/openai/*/serving.py):
- streams: one `data: {json}` string per token (a first role chunk for chat), `finish_reason`
  on the last token's chunk, a usage-only chunk when `stream_options.include_usage`, per-chunk
  usage with `continuous_usage_stats`, `token_ids` per chunk and `prompt_token_ids` on the
  first with `return_token_ids`, then `data: [DONE]`; without a stream, one response object;
- timing: the first token `ttft_ms` after the request arrives (waiting for a free sequence slot
  counts, as in vLLM's queue), then one token every 1/`tokens_per_s` s;
- limits: at most `max_num_seqs` requests generate at once; prompt + max_tokens beyond
  `max_model_len` is a 400 `ErrorResponse`; without max_tokens the answer is `output_tokens`
  long (capped by the context);
- prompt tokens: the profile's tokenizer on the message texts plus the chat template's framing
  (5 tokens per message, 3 for the assistant header: SmolLM2's ChatML); the model's chat
  template is not rendered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from orchestrator.engines.stub import CONFIG_KEY, StubSettings

FILLER = " The quick brown fox jumps over the lazy dog, and the dog sleeps on."
TOKENS_PER_MESSAGE = 5  # <|im_start|>role\n ... <|im_end|>\n
ASSISTANT_HEADER = 3  # <|im_start|>assistant\n


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class StubEngine:
    """ray.serve.llm engine protocol (`LLMEngine`) without a model; see the module docstring."""

    def __init__(self, llm_config: Any) -> None:
        self._llm_config = llm_config
        self.settings = StubSettings.model_validate(llm_config.experimental_configs[CONFIG_KEY])
        self._slots = asyncio.Semaphore(self.settings.max_num_seqs)
        self._encode: Callable[[str], list[int]] | None = None
        self._filler: list[tuple[int, str]] = []
        self._filler_ids: list[int] = []

    async def start(self) -> None:
        from orchestrator.predict.tokenizer import fast_encoder, load_tokenizer

        tok = load_tokenizer(self.settings.tokenizer)
        self._encode = fast_encoder(tok)
        self._filler = [(i, tok.decode([i])) for i in self._encode(FILLER)]
        self._filler_ids = [i for i, _ in self._filler]

    # ------------------------------------------------------------ engine protocol

    async def check_health(self) -> None:
        return None

    def routing_stats(self) -> dict[str, Any]:
        return {}

    async def resolve_lora(self, lora_model: Any) -> None:
        raise ValueError("the stub engine serves no LoRA adapters")

    async def reset_prefix_cache(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def chat(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]:
        ids: list[int] = []
        for message in request.messages:
            content = message.get("content") if isinstance(message, dict) else message.content
            ids += self._ids(_message_text(content))
        framing = TOKENS_PER_MESSAGE * len(request.messages) + ASSISTANT_HEADER
        ids += self._filler_ids[:1] * framing  # the chat template's tokens, by count
        async for item in self._generate(request, [ids], chat=True):
            yield item

    async def completions(
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        async for item in self._generate(request, self._prompts(request.prompt), chat=False):
            yield item

    async def embeddings(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator:
        yield self._error("the stub engine does not embed", 400)

    async def transcriptions(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator:
        yield self._error("the stub engine does not transcribe", 400)

    async def score(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator:
        yield self._error("the stub engine does not score", 400)

    # ------------------------------------------------------------ generation

    def _ids(self, text: str) -> list[int]:
        assert self._encode is not None, "StubEngine.start() was not awaited"
        return self._encode(text) if text else []

    def _prompts(self, prompt: Any) -> list[list[int]]:
        if isinstance(prompt, str):
            return [self._ids(prompt)]
        if prompt and isinstance(prompt[0], int):
            return [list(prompt)]
        return [self._ids(p) if isinstance(p, str) else list(p) for p in prompt or [""]]

    def _tokens(self) -> Iterator[tuple[int, str]]:
        return itertools.cycle(self._filler)

    async def _generate(
        self, request: Any, prompts: list[list[int]], *, chat: bool
    ) -> AsyncGenerator[Any, None]:
        arrived = time.monotonic()
        limit = getattr(request, "max_completion_tokens", None) or request.max_tokens
        longest = max(len(p) for p in prompts)
        if limit is not None and longest + limit > self.settings.max_model_len:
            yield self._error(
                f"This model's maximum context length is {self.settings.max_model_len} tokens. "
                f"However, you requested {limit} output tokens and your prompt contains "
                f"{longest} input tokens.",
                400,
            )
            return
        room = self.settings.max_model_len - longest
        out = min(limit if limit is not None else self.settings.timing.output_tokens, room)
        answer = list(itertools.islice(self._tokens(), max(out, 0)))
        async with self._slots:
            if getattr(request, "stream", False):
                async for chunk in self._stream(request, prompts, answer, arrived, chat=chat):
                    yield chunk
            else:
                await self._wait_for_token(arrived, len(answer) - 1)
                yield self._response(request, prompts, answer, chat=chat)

    async def _wait_for_token(self, arrived: float, index: int) -> None:
        """Sleep until token `index` (0: the first) is due."""
        timing = self.settings.timing
        due = arrived + timing.ttft_ms / 1000 + max(index, 0) / timing.tokens_per_s
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _head(self, request: Any, chat: bool) -> dict[str, Any]:
        prefix = "chatcmpl-" if chat else "cmpl-"
        return {
            "id": prefix + str(request.request_id),
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": request.model,
        }

    async def _stream(
        self,
        request: Any,
        prompts: list[list[int]],
        answer: list[tuple[int, str]],
        arrived: float,
        *,
        chat: bool,
    ) -> AsyncGenerator[str, None]:
        options = request.stream_options
        usage_last = bool(options and options.include_usage)
        usage_each = bool(usage_last and options.continuous_usage_stats)
        ids_too = bool(getattr(request, "return_token_ids", False))
        n = request.n or 1
        choices = [(p, j) for p in range(len(prompts)) for j in range(n)]
        head = self._head(request, chat)
        prompt_tokens = sum(len(p) for p in prompts)

        def usage(done: int) -> dict[str, int]:
            return {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + done,
                "completion_tokens": done,
            }

        await self._wait_for_token(arrived, 0)
        if chat:
            for index, _ in enumerate(choices):
                first: dict[str, Any] = {
                    **head,
                    "choices": [
                        {
                            "index": index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
                if ids_too:
                    first["prompt_token_ids"] = prompts[0]
                if usage_each:
                    first["usage"] = usage(0)
                yield _sse(first)
        for k, (token_id, text) in enumerate(answer):
            await self._wait_for_token(arrived, k)
            last = k == len(answer) - 1
            for index, (p, _) in enumerate(choices):
                choice: dict[str, Any] = {"index": index, "logprobs": None}
                if chat:
                    choice["delta"] = {"content": text}
                else:
                    choice["text"] = text
                choice["finish_reason"] = "length" if last else None
                if last:
                    choice["stop_reason"] = None
                if ids_too:
                    choice["token_ids"] = [token_id]
                    if not chat and k == 0:
                        choice["prompt_token_ids"] = prompts[p]
                chunk = {**head, "choices": [choice]}
                if usage_each:
                    chunk["usage"] = usage(k + 1)
                yield _sse(chunk)
        if usage_last:
            yield _sse({**head, "choices": [], "usage": usage(len(answer) * len(choices))})
        yield "data: [DONE]\n\n"

    def _response(
        self,
        request: Any,
        prompts: list[list[int]],
        answer: list[tuple[int, str]],
        *,
        chat: bool,
    ) -> Any:
        from ray.serve.llm.openai_api_models import ChatCompletionResponse, CompletionResponse

        ids_too = bool(getattr(request, "return_token_ids", False))
        n = request.n or 1
        text = "".join(t for _, t in answer)
        token_ids = [i for i, _ in answer]
        choices: list[dict[str, Any]] = []
        for p in range(len(prompts)):
            for _ in range(n):
                choice: dict[str, Any] = {
                    "index": len(choices),
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                }
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                if ids_too:
                    choice["token_ids"] = token_ids
                    if not chat:
                        choice["prompt_token_ids"] = prompts[p]
                choices.append(choice)
        prompt_tokens = sum(len(p) for p in prompts)
        done = len(answer) * len(choices)
        body: dict[str, Any] = {
            **self._head(request, chat),
            "object": "chat.completion" if chat else "text_completion",
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + done,
                "completion_tokens": done,
            },
        }
        if ids_too and chat:
            body["prompt_token_ids"] = prompts[0]
        model = ChatCompletionResponse if chat else CompletionResponse
        return model.model_validate(body)

    def _error(self, message: str, code: int) -> Any:
        from ray.serve.llm.openai_api_models import ErrorResponse

        return ErrorResponse.model_validate(
            {"error": {"message": message, "type": "BadRequestError", "code": code}}
        )
