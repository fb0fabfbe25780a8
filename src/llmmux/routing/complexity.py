"""A cheap, documented guess at how hard a request is: low, medium or high.

No model runs; a few string scans score the request (microseconds):

    +1  the prompt is over 500 estimated tokens; +2 over 2,000
    +1  it contains code: a ``` fence, or lines that start like code
    +1  it asks for reasoning: "step by step", "prove", "derive", "analyze", "compare",
        "trade-off", "why", "optimize", "algorithm", or mathematical notation
    +1  tools are offered, or the conversation is long (more than 8 messages)

A score of 0 is low, 1 or 2 medium, 3 or more high. The `complexity` strategy sends low
requests to the smallest model size band first and high ones to the largest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..types import ChatRequest

LOW, MEDIUM, HIGH = "low", "medium", "high"
LONG_PROMPT = 500
VERY_LONG_PROMPT = 2000
LONG_CONVERSATION = 8
SCAN_CHARS = 20_000  # markers are looked for in the last user message's tail only

_CODE = re.compile(
    r"```|^\s*(def |class |import |from \S+ import|function |#include|SELECT |public |fn |let |const )", re.MULTILINE
)
# Matched against the lowercased text: an IGNORECASE alternation is ten times slower.
_REASONING = re.compile(
    r"\b(?:prove|proof|derive|analy[sz]e|compare|why|optimi[sz]e|algorithms?|theorem|"
    r"trade-?offs?)\b"
)
_REASONING_PHRASES = ("step by step", "step-by-step", "\\frac", "\\sum", "\\int", "∑", "∫")


@dataclass(frozen=True, slots=True)
class Complexity:
    level: str
    score: int
    reasons: tuple[str, ...]


def assess(request: ChatRequest, prompt_tokens: int) -> Complexity:
    """Score `request`; `prompt_tokens` is its estimate (see tokens.py)."""
    reasons: list[str] = []
    if prompt_tokens > VERY_LONG_PROMPT:
        reasons += [f"prompt ~{prompt_tokens} tokens", "very long prompt"]
    elif prompt_tokens > LONG_PROMPT:
        reasons.append(f"prompt ~{prompt_tokens} tokens")
    text = _last_user_text(request)[-SCAN_CHARS:]
    if _CODE.search(text):
        reasons.append("code")
    lowered = text.lower()
    if _REASONING.search(lowered) or any(p in lowered for p in _REASONING_PHRASES):
        reasons.append("reasoning markers")
    if request.tools or len(request.messages) > LONG_CONVERSATION:
        reasons.append("tools or a long conversation")
    score = len(reasons)
    level = LOW if score == 0 else MEDIUM if score <= 2 else HIGH
    return Complexity(level, score, tuple(reasons))


def _last_user_text(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.text()
    return ""
