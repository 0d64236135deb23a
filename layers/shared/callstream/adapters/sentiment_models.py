"""The sentiment backends: VADER offline (``local``) and Amazon Comprehend (``aws``)."""

from __future__ import annotations

from typing import Any

from callstream.ports import Label, Sentiment


class VaderModel:
    """The ``local`` backend: VADER, a lexicon and rule model (offline, no download)."""

    name = "local"

    def __init__(self) -> None:
        """Load the lexicon (once per process)."""
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str, language: str) -> Sentiment:
        """VADER's compound score mapped to labels with its authors' ±0.05 thresholds."""
        polarity = self._analyzer.polarity_scores(text)
        compound = polarity["compound"]
        label: Label = (
            "POSITIVE" if compound >= 0.05 else "NEGATIVE" if compound <= -0.05 else "NEUTRAL"
        )
        scores = {
            "Positive": polarity["pos"],
            "Negative": polarity["neg"],
            "Neutral": polarity["neu"],
            "Mixed": 0.0,
        }
        return Sentiment(label, scores)


class ComprehendModel:
    """The ``aws`` backend: Amazon Comprehend ``DetectSentiment``."""

    name = "aws"

    def __init__(self, comprehend: Any) -> None:
        """Use a boto3 Comprehend client."""
        self._client = comprehend

    def score(self, text: str, language: str) -> Sentiment:
        """Comprehend's label and scores (language code: the part before ``-``)."""
        answer = self._client.detect_sentiment(
            Text=text[:4500], LanguageCode=language.split("-")[0]
        )
        return Sentiment(
            answer["Sentiment"], {k: float(v) for k, v in answer["SentimentScore"].items()}
        )
