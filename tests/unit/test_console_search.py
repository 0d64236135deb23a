"""The calls list's filter: what a request may ask, and which cards answer it."""

from __future__ import annotations

import pytest

from callstream.console import feed, search
from callstream.exceptions import RequestError


def card(**fields: object) -> dict:
    return {"sk": "c-7f3a", **fields}


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("state", "gone", "state"),
        ("state", "LIVE ", "state"),
        ("sentiment", "angry", "sentiment"),
        ("since", "yesterday", "since"),
        ("since", "2026-13-01", "since"),
        ("until", "2026-12-07T09:00:00", "zone"),  # a time with no zone is not guessed
        ("until", "2026-12-07T25:00:00Z", "until"),
    ],
)
def test_a_value_the_list_does_not_know_is_refused_by_name(field, value, named):
    with pytest.raises(RequestError, match=named):
        search.parse(**{field: value})


def test_a_day_is_the_whole_utc_day_and_a_time_keeps_its_zone():
    wanted = search.parse(since="2026-12-07", until="2026-12-07")
    assert (wanted.since, wanted.until) == ("2026-12-07T00:00:00.000Z", "2026-12-07T23:59:59.999Z")
    wanted = search.parse(since="2026-12-07T09:30:00+05:30")
    assert wanted.since == "2026-12-07T04:00:00.000Z"
    with pytest.raises(RequestError, match="until is before since"):
        search.parse(since="2026-12-08", until="2026-12-07")


def test_a_query_is_words_each_of_which_must_match_or_one_number():
    assert search.parse(query="  Hotel, BOOKING!  ").terms == ("hotel", "booking")
    assert search.parse(query="+91 98765 43210").terms == ("+91 98765 43210",)
    assert search.parse(query="a " * 50).terms == ("a",)  # repeated words count once
    assert len(search.parse(query=" ".join(f"w{i}" for i in range(50))).terms) == 8
    assert search.parse(query="x" * 10_000).terms == ("x" * 128,)


def test_a_card_matches_on_its_id_its_numbers_by_digits_and_the_words_said():
    said = card(words={"hotel", "booking", "refund"}, from_number="+919876543210")
    assert search.parse(query="7F3A").matches(said)
    assert search.parse(query="+91 98765-43210").matches(said)
    assert search.parse(query="98765").matches(said)
    assert search.parse(query="book").matches(said), "a word said, by its beginning"
    assert search.parse(query="hotel refund").matches(said)
    assert not search.parse(query="hotel cancel").matches(said), "every word must match"
    assert not search.parse(query="otel").matches(said), "words match from their beginning"
    assert not search.parse(query="12345").matches(said)
    assert not search.parse(query="hotel").matches(card()), "a call with no words yet"


def test_the_callers_overall_sentiment_is_the_mean_cut_as_the_call_page_cuts_it():
    assert search.overall(card()) is None
    assert search.overall(card(caller_score=-0.5, caller_lines=3)) == "neutral"
    assert search.overall(card(caller_score=-0.9, caller_lines=2)) == "negative"
    assert search.overall(card(caller_score=2.1, caller_lines=3)) == "positive"
    angry = card(caller_score=-2.0, caller_lines=2)
    assert search.parse(sentiment="NEGATIVE").matches(angry)
    assert not search.parse(sentiment="positive").matches(angry)
    assert not search.parse(sentiment="neutral").matches(card()), "no caller line scored yet"


def test_a_line_gives_a_bounded_set_of_words_whatever_it_holds():
    assert search.words_of("Thank you, I'd like a REFUND.") == {
        "thank", "you", "i'd", "like", "a", "refund",
    }  # fmt: skip
    long = " ".join(f"w{i}" for i in range(1_000)) + " " + "y" * 33
    words = search.words_of(long)
    assert len(words) == search.LINE_WORDS and "y" * 33 not in words
    assert search.words_of("'' ... !!") == set()


@pytest.mark.parametrize(
    "scores",
    [
        None,
        "0.9",
        [],
        {"Positive": "x"},
        {"Positive": None},
        {"Negative": {}},
        {"Positive": 1e300},
        {"Positive": "nan"},
    ],
)
def test_a_hostile_sentiment_event_adds_nothing_or_at_most_one(scores):
    counts = feed.card_counts("Sentiment Scored", {"role": "caller", "scores": scores})
    if counts is not None:
        assert counts["caller_lines"] == 1 and -1.0 <= counts["caller_score"] <= 1.0
    if scores == {"Positive": "nan"}:
        assert counts is None, "NaN is no score (it compares as nothing, and would count as +1)"
    assert feed.card_counts("Sentiment Scored", {"role": "agent", "scores": {}}) is None
