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

from orchestrator.predict.featurize_memo import clear_memos
from orchestrator.predict.lexical import sorted_unique
from orchestrator.predict.phrases import phrase_ids
from orchestrator.predict.request import ParsedRequest
from orchestrator.predict.tokenizer import fast_encoder

TEMPLATE_TOKENS_PER_TURN = 5  # "<|im_start|>role\n" ... "<|im_end|>\n" in ChatML-style templates
GENERATION_PROMPT_TOKENS = 3
MAX_EXACT_CHARS = 64_000  # longer texts: head + tail counted exactly, the middle extrapolated
LEXICAL_HEAD_TOKENS = 384  # the lexical model reads the first and last tokens of the last ask
LEXICAL_TAIL_TOKENS = 384
_CUE_WINDOW_CHARS = 1500  # lexical cues are read at both ends of the last user message

_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
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
# one scan finds every "<number> <unit>" request; the named group says which unit
_REQ_RE = re.compile(
    r"\b"
    + _NUM
    + r"[ -](?:or more |to \d+ )?(?:"
    + "|".join(f"(?P<{k}>{v})" for k, v in _UNIT_PATTERNS.items())
    + r")\b"
)
_HAS_NUMBER = re.compile(r"\d|\b(?:" + "|".join(_NUMBER_WORDS) + r"|a few|several|a couple)\b")
# lexical cues: single words (set lookups over one word split) and phrases (substring counts)
_CUES: dict[str, tuple[str, str]] = {
    "cue_brief": (
        "brief briefly short concise concisely tldr",
        "one word|one sentence|single word|yes or no|in a few words|just say|just answer|"
        "only answer|only respond|only output|in a sentence|one line|one-line|short answer|"
        "keep it short|be concise|no explanation|without explanation|only the|just the|"
        "one paragraph|a few sentences|two sentences|tl;dr",
    ),
    "cue_long": (
        "essay article blog report detailed comprehensive thorough elaborate long guide "
        "tutorial outline plan",
        "in detail|in depth|in-depth|write a full|full code|complete code|full implementation|"
        "entire|as much detail|step-by-step guide|comprehensive",
    ),
    "cue_creative": (
        "story poem song lyrics script screenplay haiku limerick rap novel fiction dialogue "
        "scene chapter",
        "",
    ),
    "cue_code": (
        "code function program script implement python javascript typescript java c++ rust "
        "sql regex class api bash html css algorithm debug bug",
        "",
    ),
    "cue_math": (
        "calculate compute solve prove equation probability integral derivative sum percent "
        "total average cost price",
        "how many|how much",
    ),
    "cue_list": ("list ideas examples tips steps suggestions options recommendations bullet", ""),
    "cue_rewrite": (
        "rewrite rephrase paraphrase edit proofread correct improve polish convert format",
        "fix the grammar",
    ),
    "cue_translate": ("translate translation", "in french|in spanish|in german|in chinese"),
    "cue_summarize": ("summarize summarise summary tldr abstract", "key points|main points"),
    "cue_explain": (
        "explain describe why discuss compare analyze analyse",
        "what is|what are|tell me about|difference between",
    ),
    "cue_letter": (
        "email e-mail letter message speech toast tweet post ad slogan title headline caption",
        "cover letter",
    ),
    "cue_classify": (
        "classify categorize categorise choose select label rate identify extract",
        "which one|which of|true or false|is it|determine whether",
    ),
    "cue_step": ("think reason justify", "step by step|step-by-step|show your work"),
}
_CUE_WORDS: dict[str, int] = {}
_CUE_PHRASES: list[tuple[int, str]] = []
for _i, (_words, _phrases) in enumerate(_CUES.values()):
    for _w in _words.split():
        _CUE_WORDS.setdefault(_w, _i)
    _CUE_PHRASES.extend((_i, ph) for ph in _phrases.split("|") if ph)
_WORD_RE = re.compile(r"[a-z][a-z+#-]*")
_ARITHMETIC = re.compile(r"\d\s*[-+*/x^=]\s*\d")
_MATH_INDEX = list(_CUES).index("cue_math")
_WH_START = re.compile(r"^\s*(?:what|who|when|where|why|how|which)\b")
_YESNO_START = re.compile(
    r"^\s*(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have)\b"
)
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d{1,3}[.)])\s", re.MULTILINE)
# the task verb of the question part: what the answer's length follows
_TRANSFORM = re.compile(
    r"\b(?:rewrite|re-write|rephrase|paraphrase|translate|proofread|correct|convert|reformat|"
    r"edit|fix|improve|polish|simplify|refactor|optimi[sz]e|modify|change)\b"
)
_SUMMARY = re.compile(
    r"\b(?:summari[sz]e|summary|tl;?dr|key points|main points|condense|shorten)\b"
)
_LONG_TASK = re.compile(
    r"\b(?:write|explain|implement|create|design|generate|develop|build|describe|draft|"
    r"compose|elaborate|outline|plan|discuss)\b"
)
_SHORT_TASK = re.compile(
    r"\b(?:classify|categori[sz]e|extract|identify|choose|select|pick|label|rate|score|"
    r"answer with|true or false|yes or no|which one|how many|what is the)\b"
)
_CODE_LINE = re.compile(
    r"[;{}]\s*$|^(?: {4,}|\t)\S|^\s*(?:def|class|import|from|return|if|for|while|#include|public|"
    r"private|function|const|let|var|select|insert|update|create table)\b|=>|</?[a-z]+[ >]"
)
_LOG_LINE = re.compile(
    r"\d{2}:\d{2}:\d{2}|\b(?:error|warn|warning|info|debug|traceback|exception)\b[:\]]"
)
_PARAGRAPH = re.compile(r"\n\s*\n")
# tokens a requested quantity usually stands for (words, sentences, paragraphs, items)
_UNIT_TOKENS = (1.35, 25.0, 110.0, 35.0)

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
    "log_requested_tokens",
    "log_last_assistant_tokens",
    "pasted_fraction",
    "log_pasted_tokens",
    "log_question_tokens",
    "code_line_fraction",
    "task_transform_follow",
    "task_summary_follow",
    "task_long",
    "task_short",
    "non_latin_fraction",
    "cjk_fraction",
)
# what the boosters read: the dense features, then the two ridge scores
MODEL_INPUTS: tuple[str, ...] = (*FEATURE_NAMES, "lexical_score", "phrase_score")


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

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def put(self, key: tuple[int, int, int], value: np.ndarray) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


_CACHE = _LruCache(2048)
_MIN_CACHED_CHARS = 200


def clear_token_cache() -> None:
    """Forget cached tokenizations and featurizations (`featurize_memo`): benchmarks measure
    cold featurizing with it."""
    _CACHE.clear()
    clear_memos()


def encode_text(tokenizer: Tokenizer, text: str) -> tuple[np.ndarray, int, bool]:
    """Token ids (head and tail for long texts), the token count, and whether it is exact."""
    if not text:
        return np.zeros(0, dtype=np.int32), 0, True
    key = (id(tokenizer), hash(text), len(text))  # keys hold no text: bounded memory
    if len(text) >= _MIN_CACHED_CHARS:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit[1:], int(hit[0]), bool(len(text) <= MAX_EXACT_CHARS)
    encode = fast_encoder(tokenizer)
    if len(text) <= MAX_EXACT_CHARS:
        ids = np.asarray(encode(text), dtype=np.int32)
        count, exact = len(ids), True
    else:
        half = MAX_EXACT_CHARS // 2
        ids = np.asarray(encode(text[:half]) + encode(text[-half:]), dtype=np.int32)
        count = int(round(len(ids) * len(text) / MAX_EXACT_CHARS))
        exact = False
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
            lexical = sorted_unique(ids)
    if parsed.prompt_token_ids is not None:
        counts = [len(parsed.prompt_token_ids)]
        lexical = sorted_unique(
            np.asarray(parsed.prompt_token_ids[-LEXICAL_TAIL_TOKENS:], np.int32)
        )
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


def _requested(text: str) -> list[float]:
    """Largest quantity asked for per unit ("a 2,000-word essay" -> words 2000), 0 if none."""
    best = dict.fromkeys(_UNIT_PATTERNS, 0)
    if not _HAS_NUMBER.search(text):
        return [0.0] * len(best)
    for m in _REQ_RE.finditer(text):
        raw = m.group(1)
        if raw in _NUMBER_WORDS:
            value = _NUMBER_WORDS[raw]
        elif raw in ("a few", "several", "a couple of"):
            value = 3
        else:
            value = int(raw.replace(",", ""))
        unit = m.lastgroup or "req_items"
        best[unit] = max(best[unit], value)
    return [float(v) for v in best.values()]


def _cue_counts(text: str) -> list[float]:
    """Per cue group: occurrences of its words and phrases (capped at 5)."""
    counts = [0] * len(_CUES)
    for word in _WORD_RE.findall(text):
        group = _CUE_WORDS.get(word)
        if group is not None:
            counts[group] += 1
    for group, phrase in _CUE_PHRASES:
        if phrase in text:
            counts[group] += text.count(phrase)
    counts[_MATH_INDEX] += len(_ARITHMETIC.findall(text))
    return [float(min(c, 5)) for c in counts]


def _char_fractions(sample: str) -> tuple[float, float]:
    """Share of ASCII digits and ASCII capitals in a text sample."""
    raw = np.frombuffer(sample.encode("ascii", "ignore"), dtype=np.uint8)
    n = max(1, len(sample))
    digits = int(np.count_nonzero((raw >= 48) & (raw <= 57)))
    upper = int(np.count_nonzero((raw >= 65) & (raw <= 90)))
    return digits / n, upper / n


def _cue_text(text: str) -> str:
    if len(text) <= 2 * _CUE_WINDOW_CHARS:
        return text.lower()
    return (text[:_CUE_WINDOW_CHARS] + "\n" + text[-_CUE_WINDOW_CHARS:]).lower()


def request_phrase_ids(parsed: ParsedRequest) -> np.ndarray:
    """Hashed word and word-pair cues of the last user message (see `phrases`). Pure."""
    return phrase_ids(_cue_text(parsed.last_user_text))


def _log_line(line: str) -> bool:
    """`_LOG_LINE` in the lower-cased line; each of its branches needs a ":" or a "]" (which
    lower-casing neither makes nor removes), so a line without either is not searched."""
    return (":" in line or "]" in line) and _LOG_LINE.search(line.lower()) is not None


def _split_question(sample: str, code: list[bool]) -> tuple[str, int]:
    """The question part of an ask and the characters of pasted material (code, logs, a text
    after "...:" or in its own paragraphs). Heuristic, on a bounded sample; `code`: per line
    of it, whether `_CODE_LINE` finds code there."""
    lines = sample.split("\n")
    code_chars = 0
    in_fence = False
    for line, coded in zip(lines, code, strict=True):
        fence = line.lstrip().startswith("```")
        if fence or in_fence or coded or _log_line(line):
            code_chars += len(line) + 1
        if fence:
            in_fence = not in_fence
    question, pasted = sample, 0
    paragraphs = _PARAGRAPH.split(sample.strip())
    if len(paragraphs) >= 2 and len(sample) > 300:
        first, last = paragraphs[0], paragraphs[-1]
        question = first if len(first) <= len(last) else last
        pasted = len(sample) - len(question)
    else:
        for i, line in enumerate(lines[:3]):
            if line.rstrip().endswith(":") and i + 1 < len(lines):
                question = "\n".join(lines[: i + 1])
                pasted = len(sample) - len(question)
                break
    pasted = max(pasted, min(code_chars, len(sample)))
    if pasted >= len(sample) - 10:
        question = sample[:300]
    return question.lower(), pasted


def _script_fractions(sample: str) -> tuple[float, float]:
    """Share of characters outside Latin scripts, and of CJK (Chinese, Japanese, Korean)."""
    if sample.isascii():
        return 0.0, 0.0
    # surrogatepass: a lone surrogate (valid in a JSON string, "\\ud800") is a code point too
    codes = np.frombuffer(sample.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = max(1, len(codes))
    non_latin = int(np.count_nonzero(codes > 0x24F))
    cjk = int(
        np.count_nonzero(
            ((codes >= 0x3040) & (codes <= 0x9FFF)) | ((codes >= 0xAC00) & (codes <= 0xD7AF))
        )
    )
    return non_latin / n, cjk / n


def _task_features(
    sample: str, last_tokens: int, n_chars: int, requested: list[float]
) -> list[float]:
    """Requested length, pasted-material share and the task verb of the question part."""
    code = [_CODE_LINE.search(line) is not None for line in sample.split("\n")]
    question, pasted_chars = _split_question(sample, code)
    fraction = pasted_chars / max(1, len(sample))
    pasted_tokens = fraction * last_tokens
    question_tokens = (1.0 - fraction) * last_tokens
    lines = len(code)
    code_lines = sum(code)
    asked = sum(v * t for v, t in zip(requested, _UNIT_TOKENS, strict=True))
    q = question[:_CUE_WINDOW_CHARS]
    follow = _log1p(pasted_tokens)
    return [
        _log1p(asked),
        fraction,
        follow,
        _log1p(question_tokens),
        code_lines / lines,
        follow if _TRANSFORM.search(q) else 0.0,
        follow if _SUMMARY.search(q) else 0.0,
        float(min(len(_LONG_TASK.findall(q)), 5)),
        float(min(len(_SHORT_TASK.findall(q)), 5)),
        *_script_fractions(sample[:2000]),
    ]


def dense_features(parsed: ParsedRequest, tok: TokenizedRequest) -> np.ndarray:
    """The feature vector (float32, order FEATURE_NAMES) of one request. Pure."""
    turns = parsed.turns
    last_user_idx = max(
        (i for i, t in enumerate(turns) if t.role == "user"), default=len(turns) - 1
    )
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
        *_char_fractions(sample),
        _log1p(len(_LIST_LINE.findall(sample))),
        float(bool(_WH_START.match(cue))),
        float(bool(_YESNO_START.match(cue))),
    ]
    requested = _requested(cue)
    values.extend(_log1p(v) for v in requested)
    values.extend(_cue_counts(cue))
    task = _task_features(sample, last_tokens, n_chars, requested)
    values.append(task[0])
    values.append(_log1p(prev_assistant[-1]) if prev_assistant else 0.0)
    values.extend(task[1:])
    return np.asarray(values, dtype=np.float32)
