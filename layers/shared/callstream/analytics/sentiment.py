"""The analyze_sentiment consumer's domain: a transcribed utterance → sentiment, rolling, alerts.

Scores each utterance (Amazon Comprehend ``DetectSentiment`` in AWS, VADER offline), stores the
label and scores on its transcript item, keeps a rolling (exponentially weighted) negative score
of the caller per stream, and publishes ``Sentiment Scored``, plus a ``Sentiment Alert`` when
the caller turns negative (rolling negativity at or above ``CALLSTREAM_ALERT_NEGATIVE_SCORE`` on
a negative utterance; re-armed once the caller recovers below half of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callstream.exceptions import RequestError
from callstream.ports import EventBus, Sentiment, SentimentModel, Transcripts

ROLLING_KEY = "rolling#caller"
ALPHA = 0.5  # weight of the newest utterance in the caller's rolling negative score


@dataclass(eq=False)
class SentimentServices:
    """What the sentiment consumer talks to."""

    model: SentimentModel
    transcripts: Transcripts
    events: EventBus
    threshold: float


def handle(svc: SentimentServices, detail: dict[str, Any]) -> dict[str, Any]:
    """Score one ``Utterance Transcribed`` event (idempotent: a redelivery changes nothing).

    Only finals are scored: a provisional line (``kind: provisional``) is replaced by its final
    within seconds, and the rule passes it over already; one that comes anyway is ignored.

    Raises:
        RequestError: the event's detail lacks ``stream_id``, ``utterance`` or ``text``.
    """
    try:
        stream_id, key, text = (
            str(detail["stream_id"]),
            str(detail["utterance"]),
            str(detail["text"]),
        )
    except KeyError as missing:
        raise RequestError(f"Utterance Transcribed event without {missing}") from None
    if detail.get("kind", "final") != "final":
        return {}
    item = svc.transcripts.get(stream_id, key) or {}
    if item.get("sentiment"):
        return item
    result = (
        svc.model.score(text, str(detail.get("language", "en-US")))
        if text.strip()
        else Sentiment("NEUTRAL", {"Positive": 0.0, "Negative": 0.0, "Neutral": 1.0, "Mixed": 0.0})
    )
    out = {
        "stream_id": stream_id,
        "call_uuid": detail.get("call_uuid"),
        "utterance": key,
        "track": detail.get("track"),
        "role": detail.get("role"),
        "text": text,
        "sentiment": result.label,
        "scores": result.scores,
    }
    if detail.get("track") == "inbound":
        out["caller_rolling_negative"] = _roll(svc, stream_id, detail, result)
    svc.transcripts.update(stream_id, key, sentiment=result.label, sentiment_scores=result.scores)
    svc.events.publish("Sentiment Scored", out)
    return {**item, **out}


def _roll(
    svc: SentimentServices, stream_id: str, detail: dict[str, Any], result: Sentiment
) -> float:
    """Update the caller's rolling negativity (an EWMA of 1 per NEGATIVE utterance, else 0).

    Labels rather than raw scores keep the rule the same for Comprehend and VADER, whose score
    scales differ. With the defaults (weight 0.5, threshold 0.5) one negative utterance from a
    calm caller raises the alert; it re-arms after the caller recovers (below half the threshold).
    """
    rolling = svc.transcripts.get(stream_id, ROLLING_KEY) or {
        "negative": 0.0,
        "count": 0,
        "alerted": False,
    }
    hit = 1.0 if result.label == "NEGATIVE" else 0.0
    negative = float(rolling["negative"]) * (1 - ALPHA) + hit * ALPHA
    alerted = bool(rolling.get("alerted"))
    if hit and negative >= svc.threshold and not alerted:
        svc.events.publish(
            "Sentiment Alert",
            {
                "stream_id": stream_id,
                "call_uuid": detail.get("call_uuid"),
                "utterance": detail.get("utterance"),
                "text": detail.get("text"),
                "caller_rolling_negative": negative,
            },
        )
        alerted = True
    elif negative < svc.threshold / 2:
        alerted = False
    svc.transcripts.put(
        {
            "stream_id": stream_id,
            "utterance": ROLLING_KEY,
            "negative": negative,
            "count": int(rolling["count"]) + 1,
            "alerted": alerted,
        }
    )
    return negative
