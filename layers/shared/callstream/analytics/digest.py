"""A call's digest after it ended: summary, intent, outcome, action items.

What Live Call Analytics users ask for most; it is stored in the call's summary beside the
recording, and shown on the console.

:class:`ExtractiveSummarizer` is the offline one (the embedded stack's, and the fallback when a
model fails): it picks sentences the call itself said. The caller's first substantial line is
the intent; the agent's last sentence that is no goodbye, question or pleasantry is the
outcome; the agent's commitments (what "will" be done, "I have", "please …") are the action
items. Bedrock's is in
:mod:`callstream.adapters.bedrock_summary`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from callstream.ports import Digest

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_COMMITMENT = re.compile(r"\b(will|i'll|we'll|i have|i've|is going to|please)\b", re.IGNORECASE)
_GOODBYE = re.compile(r"\b(goodbye|bye|thank you for calling)\b", re.IGNORECASE)
#: Lines shorter than this many words say too little to be an intent ("hi", "yes").
MIN_WORDS = 4
MAX_CHARS = 300


def _cut(text: str, limit: int = MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _ended(sentence: str) -> str:
    """A sentence with its full stop (a recogniser's text has none)."""
    return sentence if sentence[-1:] in ".!?…" else sentence + "."


def _substantial(sentence: str) -> bool:
    """Not a goodbye, a question or a pleasantry ("You are welcome.")."""
    return (
        len(sentence.split()) >= MIN_WORDS and "?" not in sentence and not _GOODBYE.search(sentence)
    )


class ExtractiveSummarizer:
    """A digest made of the call's own sentences (deterministic, offline)."""

    name = "extractive"

    def summarize(self, lines: Sequence[tuple[str, str]]) -> Digest:
        """See :class:`~callstream.ports.Summarizer`."""
        caller = [t for r, t in lines if r == "caller" and t.strip()]
        agent = [t for r, t in lines if r == "agent" and t.strip()]
        intent = next(
            (t for t in caller if len(t.split()) >= MIN_WORDS), caller[0] if caller else ""
        )
        said = [s for t in agent for s in _SENTENCE.split(t) if s.strip()]
        outcome = next((s for s in reversed(said) if _substantial(s)), "")
        actions = tuple(
            dict.fromkeys(_cut(s, 160) for s in said if _COMMITMENT.search(s) and "?" not in s)
        )[:5]
        parts = [
            f"The caller said: {_ended(_cut(intent, 160))}"
            if intent
            else "The caller said nothing."
        ]
        if outcome:
            parts.append(f"The agent: {_ended(_cut(outcome, 160))}")
        parts.append(f"{len(caller)} caller and {len(agent)} agent lines.")
        return Digest(
            summary=_cut(" ".join(parts)),
            intent=_cut(intent),
            outcome=_cut(outcome) if outcome else "no outcome was said",
            action_items=actions,
            source=self.name,
        )
