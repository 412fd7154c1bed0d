"""Features of a request: token counts, turns, structure and lexical cues.

`tokenize_request` is the only step that needs a tokenizer; `dense_features` is a pure
function of the parsed request and its token counts. Feature order is `FEATURE_NAMES`
(the artifact records it and refuses to load a model trained on another order).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import numpy as np
from tokenizers import Tokenizer

from orchestrator.predict.request import ParsedRequest

TEMPLATE_TOKENS_PER_TURN = 5  # "<|im_start|>role\n" ... "<|im_end|>\n" in ChatML-style templates
GENERATION_PROMPT_TOKENS = 3
MAX_EXACT_CHARS = 64_000  # longer texts: head + tail counted exactly, the middle extrapolated
LEXICAL_HEAD_TOKENS = 384  # the lexical model reads the first and last tokens of the last ask
LEXICAL_TAIL_TOKENS = 384
_CUE_WINDOW_CHARS = 1500  # lexical cues are read at both ends of the last user message

_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUM = r"(\d{1,5}(?:,\d{3})?|" + "|".join(_NUMBER_WORDS) + r"|a few|several|a couple of)"
_UNIT_PATTERNS = {
    "req_words": r"words?",
    "req_sentences": r"sentences?|lines?|verses?|bullet points?",
    "req_paragraphs": r"paragraphs?|sections?|pages?|chapters?|stanzas?",
    "req_items": r"(?:\w+[ -]){0,2}?(?:items?|examples?|ideas?|tips?|steps?|ways?|reasons?|"
    r"questions?|names?|points?|facts?|options?|things?|suggestions?|words? that)",
}
_REQ_RE = {
    k: re.compile(r"\b" + _NUM + r"[ -](?:or more |to \d+ )?(?:" + v + r")\b")
    for k, v in _UNIT_PATTERNS.items()
}
_CUES = {
    "cue_brief": r"\b(?:brief(?:ly)?|short|concise(?:ly)?|one word|one sentence|single word|"
    r"yes or no|in a few words|tl;?dr|just (?:say|answer|give)|only (?:answer|respond|output|say))\b",
    "cue_long": r"\b(?:essay|article|blog|report|detailed|in detail|comprehensive|thorough|"
    r"elaborate|long|in depth|in-depth|guide|tutorial|outline|plan)\b",
    "cue_creative": r"\b(?:story|poem|song|lyrics|script|screenplay|haiku|limerick|rap|novel|"
    r"fiction|dialogue|scene|chapter)\b",
    "cue_code": r"\b(?:code|function|program|script|implement|python|javascript|typescript|java|"
    r"c\+\+|rust|sql|regex|class|api|bash|html|css|algorithm|debug|bug)\b",
    "cue_math": r"\b(?:calculate|compute|solve|how many|how much|prove|equation|probability|"
    r"integral|derivative|sum|percent|total|average|cost|price|\d+\s*[-+*/x^=]\s*\d+)\b",
    "cue_list": r"\b(?:list|ideas|examples|tips|steps|suggestions|options|recommendations|"
    r"bullet)\b",
    "cue_rewrite": r"\b(?:rewrite|rephrase|paraphrase|edit|proofread|correct|fix the grammar|"
    r"improve|polish|convert|format)\b",
    "cue_translate": r"\b(?:translate|translation|in (?:french|spanish|german|chinese|japanese))\b",
    "cue_summarize": r"\b(?:summari[sz]e|summary|tl;dr|key points|main points|abstract)\b",
    "cue_explain": r"\b(?:explain|describe|why|what is|what are|tell me about|discuss|compare|"
    r"difference between|analy[sz]e)\b",
    "cue_letter": r"\b(?:email|e-mail|letter|message|cover letter|speech|toast|tweet|post|ad|"
    r"slogan|title|headline|caption)\b",
    "cue_classify": r"\b(?:classify|categori[sz]e|choose|select|which (?:one|of)|true or false|"
    r"label|rate|identify|extract|is it|determine whether)\b",
    "cue_step": r"\b(?:step by step|step-by-step|show your work|think|reason|justify)\b",
}
_CUE_RE = {k: re.compile(v) for k, v in _CUES.items()}
_WH_START = re.compile(r"^\s*(?:what|who|when|where|why|how|which)\b")
_YESNO_START = re.compile(
    r"^\s*(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have)\b"
)
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d{1,3}[.)])\s", re.MULTILINE)

FEATURE_NAMES: tuple[str, ...] = (
    "log_prompt_tokens",
    "log_last_user_tokens",
    "log_system_tokens",
    "n_turns",
    "n_user_turns",
    "log_prev_assistant_tokens",
    "log_last_user_chars",
    "log_last_user_words",
    "log_last_user_lines",
    "chars_per_token",
    "question_marks",
    "code_fences",
    "digit_fraction",
    "upper_fraction",
    "list_lines",
    "starts_wh",
    "starts_yesno",
    *_UNIT_PATTERNS,
    *_CUES,
)


@dataclass(frozen=True)
class TokenizedRequest:
    """Token counts of a parsed request (one tokenizer), plus the ids the lexical model reads.

    Invariants: `turn_tokens` aligns with `ParsedRequest.turns`; `exact` is False when a text
    longer than MAX_EXACT_CHARS had its middle extrapolated.
    """

    turn_tokens: tuple[int, ...]
    tools_tokens: int
    prompt_tokens: int
    lexical_ids: np.ndarray  # unique int32 ids from the head and tail of the last user message
    exact: bool


class _LruCache:
    """Small thread-safe LRU of text -> token ids (system prompts and chat history repeat)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[int, int, int]) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[int, int, int], value: np.ndarray) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


_CACHE = _LruCache(2048)
_MIN_CACHED_CHARS = 200


def encode_text(tokenizer: Tokenizer, text: str) -> tuple[np.ndarray, int, bool]:
    """Token ids (head and tail for long texts), the token count, and whether it is exact."""
    if not text:
        return np.zeros(0, dtype=np.int32), 0, True
    key = (id(tokenizer), hash(text), len(text))  # keys hold no text: bounded memory
    if len(text) >= _MIN_CACHED_CHARS:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit[1:], int(hit[0]), bool(len(text) <= MAX_EXACT_CHARS)
    if len(text) <= MAX_EXACT_CHARS:
        ids = np.asarray(tokenizer.encode_batch_fast([text], add_special_tokens=False)[0].ids)
        count, exact = len(ids), True
    else:
        half = MAX_EXACT_CHARS // 2
        head, tail = tokenizer.encode_batch_fast(
            [text[:half], text[-half:]], add_special_tokens=False
        )
        ids = np.asarray(head.ids + tail.ids)
        count = int(round(len(ids) * len(text) / MAX_EXACT_CHARS))
        exact = False
    ids = ids.astype(np.int32, copy=False)
    if len(text) >= _MIN_CACHED_CHARS:
        _CACHE.put(key, np.concatenate(([count], ids)).astype(np.int32))
    return ids, count, exact


def tokenize_request(parsed: ParsedRequest, tokenizer: Tokenizer) -> TokenizedRequest:
    """Count tokens per turn, the tools schema, and the chat-template overhead."""
    counts: list[int] = []
    exact = True
    last_user = max((i for i, t in enumerate(parsed.turns) if t.role == "user"), default=-1)
    lexical = np.zeros(0, dtype=np.int32)
    for i, turn in enumerate(parsed.turns):
        ids, count, ok = encode_text(tokenizer, turn.text)
        counts.append(count)
        exact = exact and ok
        if i == last_user:
            if len(ids) > LEXICAL_HEAD_TOKENS + LEXICAL_TAIL_TOKENS:
                ids = np.concatenate((ids[:LEXICAL_HEAD_TOKENS], ids[-LEXICAL_TAIL_TOKENS:]))
            lexical = np.unique(ids)
    if parsed.prompt_token_ids is not None:
        counts = [len(parsed.prompt_token_ids)]
        lexical = np.unique(np.asarray(parsed.prompt_token_ids[-LEXICAL_TAIL_TOKENS:], np.int32))
        overhead = 0
    else:
        overhead = (
            0
            if parsed.is_completion
            else TEMPLATE_TOKENS_PER_TURN * len(counts) + GENERATION_PROMPT_TOKENS
        )
    tools = encode_text(tokenizer, parsed.tools_text)[1] if parsed.tools_text else 0
    return TokenizedRequest(
        turn_tokens=tuple(counts),
        tools_tokens=tools,
        prompt_tokens=sum(counts) + tools + overhead,
        lexical_ids=lexical,
        exact=exact,
    )


def _log1p(x: float) -> float:
    return math.log1p(max(0.0, x))


def _requested(text: str, pattern: re.Pattern[str]) -> float:
    """Largest quantity asked for with this unit ("a 2,000-word essay" -> 2000), 0 if none."""
    best = 0
    for m in pattern.finditer(text):
        raw = m.group(1)
        if raw in _NUMBER_WORDS:
            value = _NUMBER_WORDS[raw]
        elif raw in ("a few", "several", "a couple of"):
            value = 3
        else:
            value = int(raw.replace(",", ""))
        best = max(best, value)
    return float(best)


def _cue_text(text: str) -> str:
    if len(text) <= 2 * _CUE_WINDOW_CHARS:
        return text.lower()
    return (text[:_CUE_WINDOW_CHARS] + "\n" + text[-_CUE_WINDOW_CHARS:]).lower()


def dense_features(parsed: ParsedRequest, tok: TokenizedRequest) -> np.ndarray:
    """The feature vector (float32, order FEATURE_NAMES) of one request. Pure."""
    turns = parsed.turns
    last_user_idx = max((i for i, t in enumerate(turns) if t.role == "user"), default=len(turns) - 1)
    last_text = turns[last_user_idx].text
    last_tokens = tok.turn_tokens[last_user_idx] if tok.turn_tokens else 0
    system_tokens = sum(
        c for t, c in zip(turns, tok.turn_tokens, strict=False) if t.role in ("system", "developer")
    )
    prev_assistant = [
        c for t, c in zip(turns, tok.turn_tokens, strict=False) if t.role == "assistant"
    ]
    cue = _cue_text(last_text)
    n_chars = len(last_text)
    sample = last_text[:4000]
    n_sample = max(1, len(sample))
    values: list[float] = [
        _log1p(tok.prompt_tokens),
        _log1p(last_tokens),
        _log1p(system_tokens),
        float(len(turns)),
        float(sum(1 for t in turns if t.role == "user")),
        _log1p(sum(prev_assistant) / len(prev_assistant)) if prev_assistant else 0.0,
        _log1p(n_chars),
        _log1p(len(last_text.split()) if n_chars <= 20000 else n_chars / 6),
        _log1p(last_text.count("\n") + 1),
        n_chars / max(1, last_tokens),
        float(min(last_text.count("?"), 20)),
        float(min(last_text.count("```"), 20)),
        sum(ch.isdigit() for ch in sample) / n_sample,
        sum(ch.isupper() for ch in sample) / n_sample,
        _log1p(len(_LIST_LINE.findall(sample))),
        float(bool(_WH_START.match(cue))),
        float(bool(_YESNO_START.match(cue))),
    ]
    values.extend(_log1p(_requested(cue, rx)) for rx in _REQ_RE.values())
    values.extend(float(min(len(rx.findall(cue)), 5)) for rx in _CUE_RE.values())
    return np.asarray(values, dtype=np.float32)
