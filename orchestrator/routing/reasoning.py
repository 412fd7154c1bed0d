"""Reasoning on / off / effort per request and profile (pure).

The request-level wish comes from the tenant rule, the caller and the prediction; each profile
then maps it onto what its model can do:
- `enable_thinking` (e.g. Qwen3): on or off via chat-template kwargs; no effort levels;
- `reasoning_effort` (e.g. gpt-oss): low / medium / high via the request's `reasoning_effort`;
  it cannot be switched off, so "off" becomes "low";
- `none` + default_on: always reasons; `none` without default_on: never reasons.
The remaining budget steps the level down while the reasoning tokens would cost more than
`reasoning_budget_share` of what is left.
"""

from __future__ import annotations

from functools import lru_cache

from orchestrator.routing.types import (
    REASONING_LEVELS,
    ProfileView,
    ReasoningLevel,
    ReasoningSetting,
    RouteRequest,
    RoutingKnobs,
    TenantRules,
    TokenBudget,
)


def wanted_level(
    request: RouteRequest, prediction: TokenBudget, rules: TenantRules, knobs: RoutingKnobs
) -> tuple[ReasoningLevel, str]:
    """The request's reasoning wish before any profile is considered, with the why."""
    if not rules.reasoning_allowed:
        return "off", "tenant disallows reasoning"
    if request.wants_reasoning is False:
        return "off", "caller turned reasoning off"
    hard = (
        prediction.query_class == "reasoning"
        or prediction.reasoning_probability >= knobs.reasoning_high_probability
    )
    if request.wants_reasoning is True:
        return ("high" if hard else "medium"), "caller asked for reasoning"
    if hard:
        return (
            "high",
            f"predicted {prediction.query_class}, p={prediction.reasoning_probability:.2f}",
        )
    if prediction.reasoning_probability >= knobs.reasoning_on_probability:
        return "medium", f"reasoning p={prediction.reasoning_probability:.2f}"
    return "off", f"reasoning p={prediction.reasoning_probability:.2f}"


def cannot_turn_off(profile: ProfileView) -> bool:
    """True when the profile always spends some reasoning tokens."""
    if not profile.reasoning_supported:
        return False
    if profile.reasoning_control == "reasoning_effort":
        return True
    return profile.reasoning_control == "none" and profile.reasoning_default_on


def setting_for(
    profile: ProfileView,
    level: ReasoningLevel,
    prediction: TokenBudget,
    rules: TenantRules,
    knobs: RoutingKnobs,
) -> ReasoningSetting:
    """Map a wished level onto the profile; cap by policy and step down by remaining budget."""
    if not profile.reasoning_supported:
        return _NO_REASONING
    control = profile.reasoning_control
    if control == "none":
        if not profile.reasoning_default_on:
            return _CANNOT_ENABLE
        return _on(control, None, prediction.reasoning_tokens, rules, "always reasons")
    if control == "enable_thinking":
        if level == "off":
            return _THINKING_OFF
        # no effort levels: the model thinks as long as it needs, up to the cap
        if not _affordable(profile, prediction.reasoning_tokens, rules, knobs):
            return _THINKING_OFF_BUDGET
        return _on(control, None, prediction.reasoning_tokens, rules, "thinking on")
    # reasoning_effort: "off" is not available; walk down from the wished level to "low"
    start = max(1, REASONING_LEVELS.index(level))
    for idx in range(start, 0, -1):
        effort = REASONING_LEVELS[idx]
        tokens = round(prediction.reasoning_tokens * knobs.effort_token_share.get(effort, 1.0))
        if idx == 1 or _affordable(profile, tokens, rules, knobs):
            note = f"effort {effort}"
            if idx < start:
                note += " (stepped down: remaining budget)"
            elif level == "off":
                note += " (cannot be switched off)"
            return _on(control, effort, tokens, rules, note)
    raise AssertionError("unreachable")  # pragma: no cover


def _affordable(profile: ProfileView, tokens: int, rules: TenantRules, knobs: RoutingKnobs) -> bool:
    if rules.remaining_budget_usd is None:
        return True
    cap = rules.max_reasoning_tokens
    if cap is not None:
        tokens = min(tokens, cap)
    return (
        tokens * profile.prices.output_usd_per_token
        <= knobs.reasoning_budget_share * rules.remaining_budget_usd
    )


def _on(
    control: str, effort: str | None, tokens: int, rules: TenantRules, note: str
) -> ReasoningSetting:
    cap = rules.max_reasoning_tokens
    return _setting_on(control, effort, tokens if cap is None else min(tokens, cap), cap, note)


@lru_cache(maxsize=4096)
def _setting_on(
    control: str, effort: str | None, expected: int, cap: int | None, note: str
) -> ReasoningSetting:
    """Shared, immutable settings (built once per distinct value; callers must not mutate)."""
    kwargs = {"enable_thinking": True} if control == "enable_thinking" else {}
    params = {"reasoning_effort": effort} if effort is not None else {}
    return ReasoningSetting(
        enabled=True,
        effort=effort,  # type: ignore[arg-type]
        token_cap=cap,
        expected_tokens=expected,
        chat_template_kwargs=kwargs,
        request_params=params,
        note=note,
    )


_NO_REASONING = ReasoningSetting(note="profile does not reason")
_CANNOT_ENABLE = ReasoningSetting(note="profile reasoning cannot be enabled")
_THINKING_OFF = ReasoningSetting(
    chat_template_kwargs={"enable_thinking": False}, note="thinking off"
)
_THINKING_OFF_BUDGET = ReasoningSetting(
    chat_template_kwargs={"enable_thinking": False}, note="thinking off: remaining budget too small"
)
