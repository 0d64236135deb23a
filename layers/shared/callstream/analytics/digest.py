"""A call's digest after it ended: summary, intent, outcome, action items.

What Live Call Analytics users ask for most; it is stored in the call's summary beside the
recording, and shown on the console.

:class:`ModelSummarizer` asks a language model through the voice agent's own port
(:class:`~callstream.ports.LanguageModel`: Bedrock in AWS). :class:`ExtractiveSummarizer` is
the offline one (the embedded stack's, and the fallback when a model fails): it picks sentences
the call itself said. The caller's first substantial line is the intent; the agent's last
sentence that is no goodbye, question or pleasantry is the outcome; the agent's commitments
(what "will" be done, "I have", "please …") are the action items.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence

from callstream.exceptions import UpstreamError
from callstream.ports import Digest, LanguageModel, Said

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


#: The transcript a model gets: the newest lines up to this many characters (a bounded prompt).
MAX_TRANSCRIPT_CHARS = 24_000
SYSTEM = (
    "You summarise phone calls for a contact centre. Reply with one JSON object and nothing "
    'else: {"summary": two or three sentences, "intent": what the caller wanted, "outcome": '
    'how the call left it, "action_items": a list of short strings (may be empty)}.'
)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class ModelSummarizer:
    """A language model's digest of a call, through the voice agent's port."""

    def __init__(self, model: LanguageModel, name: str) -> None:
        """Ask ``model`` (``name`` says which, in the digest's ``source``)."""
        self.model, self.name = model, name

    def summarize(self, lines: Sequence[tuple[str, str]]) -> Digest:
        """See :class:`~callstream.ports.Summarizer`.

        Raises:
            UpstreamError: the model failed (a ModelError) or did not answer in JSON.
        """
        transcript = "\n".join(f"{role}: {text}" for role, text in lines)[-MAX_TRANSCRIPT_CHARS:]
        history = [Said("caller", transcript or "(silence)")]
        text = asyncio.run(self._text(history))
        return parse_digest(text, self.name)

    async def _text(self, history: list[Said]) -> str:
        return "".join([p async for p in self.model.reply(SYSTEM, history) if isinstance(p, str)])


def parse_digest(text: str, source: str) -> Digest:
    """The digest in a model's answer.

    Raises:
        UpstreamError: no JSON object with a summary in it.
    """
    match = _OBJECT.search(text)
    try:
        doc = json.loads(match.group(0)) if match else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("summary"), str):
        raise UpstreamError(f"the model's summary is not the JSON asked for: {text[:120]!r}")
    items = doc.get("action_items")
    return Digest(
        summary=doc["summary"][:1000],
        intent=str(doc.get("intent") or "")[:300],
        outcome=str(doc.get("outcome") or "")[:300],
        action_items=tuple(str(i)[:200] for i in items[:10]) if isinstance(items, list) else (),
        source=source,
    )
