"""The core fit's configuration (`fit.py`): every training choice, one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 7
    test_percent: int = 20
    folds: int = 5  # prompt folds, used when the training rows hold a single source
    lexical_damp: float = 1.0
    phrase_damp: float = 0.5
    # small trees with large leaves: rows of one prompt share their features (alpaca_eval has
    # 17 answers per prompt), and on a left-out source 4 leaves of >= 400 rows transfer
    # better than 7 of 200 (chosen by the leave-one-source-out mean)
    rounds: int = 150
    learning_rate: float = 0.1
    num_leaves: int = 4
    min_data_in_leaf: int = 400
    threads: int = 2
    all_data: bool = False  # fit on every prompt (no held-out evaluation)
    stack_folds: str = "source"  # "source" | "prompt": how ridge scores are made out-of-fold
    # row weight ~ rows_of_source ** -source_balance (0.75 since issue 31's third session, chosen
    # with the prompt-type terms on the leave-one-source-out table)
    source_balance: float = 0.75
    conformal_classes: int = 3  # Mondrian p90 classes by predicted length
    traffic_weight: float = 5.0  # a deployment's own traffic counts this many times
    # learn within-source contrasts only: each source's mean level (its answering models'
    # style, its task mix) is removed and the mean of the levels added back; a deployment's
    # own level is what the online calibration offset learns
    source_levels: bool = True
    # ridge on SmolLM2 token embeddings (576 numbers per request), blended into both quantiles
    # with this weight (0: off); damp and weight chosen on the leave-one-source-out table
    embedding_damp: float = 3.0
    embedding_blend: float = 0.5
    # "smollm2" | "wordllama" | "both" | "minilm" | "smollm2+minilm" (`embedding.py`)
    embedding_source: str = "smollm2"
    # per-source spread: "none" keeps each source's spread of log lengths; "std" rescales
    # each source to the mean spread; "rank" replaces each source's targets by their normal
    # scores at the mean spread (only the order inside a source is learned)
    source_scale: str = "none"
    # "quantile" (alpha 0.5) | "regression" (squared error) | "rank" (`ranker.py`)
    p50_objective: str = "quantile"
    linear_tree: bool = False
    # "fixed": embedding score x embedding_blend; "learned": the embedding and token-id ridge
    # scores weighted by an out-of-source fit on the training sources (`stack.py`)
    blend: str = "fixed"
    # train the boosters without the dense features the training sources disagree on
    consistent_features: bool = False
    chat_weight: float = 1.0  # row-weight factor of the chat-like sources (CHAT_SOURCES)
    # prompt types ("math", "pasted": `prompt_type.py`) that get a length term fitted on the
    # training requests of that type (what the boosters, pooled over types, leave of it);
    # maths word problems: GSM8K left out 0.142 -> 0.194 (issue 31, third session)
    type_terms: tuple[str, ...] = ("math",)
    type_levels: bool = False  # the type terms also move their type's level (`fit_type_term`)
    # embedding blend weight for requests that are not maths word problems (None: the same);
    # 0.75 chosen among 0.75 / 1.0 on the leave-one-source-out table
    chat_blend: float | None = 0.75
    # the p50 booster non-decreasing in explicit length requests and "long" cues, and
    # non-increasing in "brief" cues (LightGBM allows it with squared error only)
    monotone_requests: bool = False
    # a linear term for explicit length asks (brief / long cues, a requested size) with fixed
    # signs, fitted within the training sources (`prompt_type.fit_cue_term`); on since issue
    # 31's fourth session (leave-one-source-out mean unchanged, arena-hard v0.1 +0.004)
    cue_terms: bool = True
    # experiments (issue 31, session 17): the boosters learn beside the embedding blend
    # (it is their init score) instead of being added to it blind
    booster_offset: bool = False
    # which requests the embedding ridge is fitted on: "all" | "chat" (no maths problems)
    embedding_rows: str = "all"
    # the p50 booster is the mean of boosters each fitted without one training source
    # (`bagging.py`): a contrast only one source teaches moves one bag, not the mean
    p50_source_bag: bool = False
    # session 18: how many training sources each bag leaves out (every combination), and the
    # weight of the booster on all training sources beside the bags (0: bags only)
    p50_bag_leave: int = 1
    p50_bag_full: float = 0.0
    p50_bag_largest: bool = False  # one bag only: without the source with the most rows
