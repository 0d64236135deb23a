"""The :class:`~callstream.ports.Summarizer` on Amazon Bedrock (``Converse``, one request).

The model is asked for the digest as one JSON object; anything else it says is an
:class:`UpstreamError`, on which the summary consumer keeps the extractive digest instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from callstream.exceptions import UpstreamError
from callstream.ports import Digest

#: The transcript sent: the newest lines up to this many characters (a bounded prompt).
MAX_TRANSCRIPT_CHARS = 24_000
SYSTEM = (
    "You summarise phone calls for a contact centre. Reply with one JSON object and nothing "
    'else: {"summary": two or three sentences, "intent": what the caller wanted, "outcome": '
    'how the call left it, "action_items": a list of short strings (may be empty)}.'
)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class BedrockSummarizer:
    """A Bedrock model's digest of a call."""

    def __init__(self, client: Any, model_id: str) -> None:
        """Ask ``model_id`` through a ``bedrock-runtime`` client."""
        self.client, self.model_id = client, model_id
        self.name = f"bedrock:{model_id}"

    def request(self, lines: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """The ``converse`` parameters for this call's lines."""
        transcript = "\n".join(f"{role}: {text}" for role, text in lines)[-MAX_TRANSCRIPT_CHARS:]
        return {
            "modelId": self.model_id,
            "system": [{"text": SYSTEM}],
            "messages": [{"role": "user", "content": [{"text": transcript or "(silence)"}]}],
            "inferenceConfig": {"maxTokens": 600, "temperature": 0.2},
        }

    def summarize(self, lines: Sequence[tuple[str, str]]) -> Digest:
        """See :class:`~callstream.ports.Summarizer`."""
        try:
            answer = self.client.converse(**self.request(lines))
            text = "".join(
                block.get("text", "") for block in answer["output"]["message"]["content"]
            )
        except Exception as error:  # ClientError, throttling, no model access…
            raise UpstreamError(f"Bedrock did not summarise the call: {error}") from error
        return parse_digest(text, self.name)


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
