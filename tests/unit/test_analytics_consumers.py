"""The analytics consumers with fakes for their ports: sentiment and its alert, the sweeper, the
transcription consumer (per utterance and live) and the summary."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from callstream.analytics import sentiment, sweeper
from callstream.audio import records
from callstream.exceptions import RequestError
from callstream.ports import RecordAt, Sentiment


class Table:
    """The transcripts table, in memory."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, stream_id: str, utterance: str) -> dict[str, Any] | None:
        return self.items.get((stream_id, utterance))

    def put(self, item: dict[str, Any]) -> None:
        self.items[(item["stream_id"], item["utterance"])] = dict(item)

    def update(self, stream_id: str, utterance: str, **fields: Any) -> None:
        item = self.items.setdefault((stream_id, utterance), {})
        item.update({k: v for k, v in fields.items() if v is not None})
        for k in [k for k, v in fields.items() if v is None]:  # None removes, as DynamoDB's
            item.pop(k, None)

    def put_new(self, item: dict[str, Any]) -> bool:
        if (item["stream_id"], item["utterance"]) in self.items:
            return False
        self.put(item)
        return True

    def pending(self, partition: str, before: float, limit: int) -> list[dict[str, Any]]:
        held = [
            i
            for i in self.items.values()
            if i.get("pending") == partition and i["pending_at"] < before
        ]
        return sorted(held, key=lambda i: i["pending_at"])[:limit]


class Bus:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.published.append((detail_type, detail))


class Labels:
    """A sentiment model that reads the label off the text's first word."""

    name = "fake"

    def __init__(self) -> None:
        self.scored: list[str] = []

    def score(self, text: str, language: str) -> Sentiment:
        self.scored.append(text)
        label = text.split()[0].upper()
        return Sentiment(label, {"Negative": 1.0 if label == "NEGATIVE" else 0.0})  # type: ignore[arg-type]


def scoring() -> sentiment.SentimentServices:
    return sentiment.SentimentServices(
        model=Labels(), transcripts=Table(), events=Bus(), threshold=0.5
    )


def said(text: str, n: int, track: str = "inbound") -> dict[str, Any]:
    return {
        "stream_id": "s-1",
        "call_uuid": "c-1",
        "utterance": f"{track}#{n:09d}",
        "text": text,
        "track": track,
    }


def test_a_negative_caller_raises_one_alert_until_they_recover() -> None:
    svc = scoring()
    for n, text in enumerate(
        ["negative no", "negative still", "neutral ok", "neutral fine", "negative again"]
    ):
        sentiment.handle(svc, said(text, n))
    alerts = [d["utterance"] for kind, d in svc.events.published if kind == "Sentiment Alert"]  # type: ignore[attr-defined]
    # alerted at once; not again while still negative; re-armed below half the threshold
    assert alerts == ["inbound#000000000", "inbound#000000004"]


def test_a_redelivered_utterance_is_not_scored_twice() -> None:
    svc = scoring()
    sentiment.handle(svc, said("positive thanks", 1))
    sentiment.handle(svc, said("positive thanks", 1))
    assert svc.model.scored == ["positive thanks"]  # type: ignore[attr-defined]
    assert [k for k, _ in svc.events.published] == ["Sentiment Scored"]  # type: ignore[attr-defined]


def test_the_agent_never_moves_the_callers_alert_and_silence_costs_no_model_call() -> None:
    svc = scoring()
    sentiment.handle(svc, said("negative sorry", 1, track="outbound"))
    sentiment.handle(svc, said("   ", 2))
    assert svc.model.scored == ["negative sorry"]  # type: ignore[attr-defined]
    assert all(kind == "Sentiment Scored" for kind, _ in svc.events.published)  # type: ignore[attr-defined]


def test_a_provisional_line_is_never_scored_its_final_is() -> None:
    svc = scoring()
    sentiment.handle(svc, said("negative so far", 1) | {"kind": "provisional"})
    assert svc.model.scored == [] and svc.events.published == []  # type: ignore[attr-defined]
    sentiment.handle(svc, said("negative at last", 1) | {"kind": "final"})
    assert svc.model.scored == ["negative at last"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("missing", ["stream_id", "utterance", "text"])
def test_an_event_without_a_field_it_needs_is_a_precise_request_error(missing: str) -> None:
    detail = said("positive", 1)
    del detail[missing]
    with pytest.raises(RequestError, match=missing):
        sentiment.handle(scoring(), detail)


class Registry:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.ended: list[tuple[str, dict[str, Any]]] = []

    def live_streams(self) -> list[Any]:
        return self.items

    def mark_ended(self, stream_id: str, call_uuid: str, **fields: Any) -> None:
        self.ended.append((stream_id, fields))


class Tasks:
    def __init__(self, alive: set[str]) -> None:
        self.alive_ones = alive
        self.probed: list[str] = []

    def alive(self, address: str) -> bool:
        self.probed.append(address)
        return address in self.alive_ones


def test_a_hold_the_sweeper_cannot_read_back_is_let_go_and_never_stops_the_sweep() -> None:
    """Holds with no place, one that names a record not an utterance, one past retention, and
    one given back too often: each let go, named; the readable one is given back."""
    from callstream.analytics.transcripts import pending_partition

    table, log = Table(), Log()
    readable = records.encode(spoken(0, live=True))
    log.read = lambda at: {"1": readable, "2": b"CSR\x01junk"}.get(at.sequence)  # type: ignore[method-assign]
    base = {"stream_id": "s-1", "pending": pending_partition("s-1"), "pending_at": 1.0}
    for n, extra in enumerate(
        [
            {"shard": "shardId-0", "sequence": "1"},
            {"shard": "shardId-0", "sequence": "2"},  # not an utterance record
            {"shard": "shardId-0", "sequence": "3"},  # past the stream's retention
            {},  # no place at all
            {"shard": "shardId-0", "sequence": "1", "returns": sweeper.RETURNS_MAX},
        ]
    ):
        table.put(base | {"utterance": f"inbound#{n:09d}"} | extra)
    svc = sweeper.SweeperServices(
        registry=Registry([]),  # type: ignore[arg-type]
        audio=Log(),
        tasks=Tasks(set()),  # type: ignore[arg-type]
        transcripts=table,
        utterances=log,
    )
    back = sweeper.give_back(svc, now=1.0 + sweeper.HOLD_S + 1)
    assert back["given_back"] == ["s-1/inbound#000000000"]
    assert sorted(back["lost"]) == [f"s-1/inbound#{n:09d}" for n in (1, 2, 3, 4)]
    (put,) = log.put_records
    assert records.decode(put[1]).live is False, "put back unmarked"  # type: ignore[union-attr]
    assert [k for k, i in table.items.items() if i.get("pending")] == [("s-1", "inbound#000000000")]


class Log:
    def __init__(self) -> None:
        self.put_records: list[tuple[str, bytes]] = []

    def put(self, key: str, data: bytes) -> None:
        self.put_records.append((key, data))

    def read(self, at: Any) -> bytes | None:
        return None


def test_the_sweeper_ends_only_the_streams_of_dead_tasks_probing_each_task_once() -> None:
    items = [
        SimpleNamespace(stream_id="s-1", call_uuid="c-1", task_address="http://10.0.0.1:8081"),
        SimpleNamespace(stream_id="s-2", call_uuid="c-2", task_address="http://10.0.0.1:8081"),
        SimpleNamespace(stream_id="s-3", call_uuid="c-3", task_address="http://10.0.0.2:8081"),
        SimpleNamespace(stream_id="s-4", call_uuid="c-4", task_address=None),  # not yet started
    ]
    registry, tasks, log = Registry(items), Tasks({"http://10.0.0.2:8081"}), Log()
    svc = sweeper.SweeperServices(
        registry=registry,  # type: ignore[arg-type]
        audio=log,
        tasks=tasks,  # type: ignore[arg-type]
        transcripts=Table(),
        utterances=Log(),
    )

    assert sweeper.handle(svc, {}) == {"swept": ["s-1", "s-2"], "given_back": [], "lost": []}

    assert tasks.probed == ["http://10.0.0.1:8081", "http://10.0.0.2:8081"]
    assert [(s, f["end_reason"], f["state"]) for s, f in registry.ended] == [
        ("s-1", "swept", "stopped"),
        ("s-2", "swept", "stopped"),
    ]
    ends = [records.decode(data) for _, data in log.put_records]
    assert [(e.stream_id, e.name, e.seq) for e in ends] == [  # type: ignore[union-attr]
        ("s-1", "close", sweeper.SWEEP_SEQ),
        ("s-2", "close", sweeper.SWEEP_SEQ),
    ]


# -- the transcription consumer (transcribe_utterance) ----------------------------------------


class Ears:
    """A recogniser that says how many samples it heard, in which language."""

    name = "fake"

    def __init__(self) -> None:
        self.heard: list[str] = []

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Any:
        from callstream.ports import Transcript

        self.heard.append(language)
        return Transcript(text=f"{len(pcm) // 2} samples", confidence=None)


AT = RecordAt("shardId-000000000000", "49590000000000000000000000000000000000000000000001")


def transcribing() -> tuple[Any, Ears, Table, Bus]:
    from callstream.analytics import transcripts

    ears, table, bus = Ears(), Table(), Bus()
    svc = transcripts.TranscriptServices(
        transcriber=ears,
        transcripts=table,
        events=bus,
        language="en-US",
        quarantine=None,  # type: ignore[arg-type]
    )
    return svc, ears, table, bus


def spoken(index: int, **fields: Any) -> records.UtteranceRecord:
    return records.UtteranceRecord(
        stream_id="s-1",
        call_uuid="c-1",
        track="inbound",
        index=index,
        sample_rate=8000,
        start_sample=8000 * index,
        end_sample=8000 * index + 800,
        payload=bytes(1600),
        **fields,
    )


def test_an_utterance_is_recognised_once_stored_and_published_once() -> None:
    from callstream.analytics import transcripts

    svc, ears, table, bus = transcribing()
    data = records.encode(spoken(3, language="hi-IN"))
    item = transcripts.handle(svc, data, AT)
    assert item is not None and item["text"] == "800 samples" and item["language"] == "hi-IN"
    assert transcripts.handle(svc, data, AT) is not None  # redelivered
    assert ears.heard == ["hi-IN"] and len(bus.published) == 1
    ((kind, detail),) = bus.published
    assert kind == "Utterance Transcribed" and detail["utterance"] == "inbound#000000003"
    assert table.items[("s-1", "inbound#000000003")]["published"] is True


def test_a_live_call_is_stored_from_its_finals_and_nothing_is_recognised_twice() -> None:
    from callstream.analytics import transcripts

    svc, ears, _, bus = transcribing()
    marked = records.encode(spoken(0, live=True))
    line = {
        "stream_id": "s-1",
        "call_uuid": "c-1",
        "track": "inbound",
        "result_id": "inbound-0",
        "start_ms": 0.0,
        "end_ms": 100.0,
    }
    partial = records.TranscriptRecord(**line, kind="partial", text="hel")  # type: ignore[arg-type]
    final = records.TranscriptRecord(**line, kind="final", text="hello", utterance_index=0)  # type: ignore[arg-type]
    provisional = records.TranscriptRecord(  # type: ignore[arg-type]
        **line, kind="provisional", text="hell", utterance_index=0, settles=("inbound-9",)
    )
    assert transcripts.handle(svc, marked, AT) is None, "left to the live final"
    transcripts.handle(svc, records.encode(partial), AT)
    transcripts.handle(svc, records.encode(provisional), AT)
    held = svc.transcripts.get("s-1", "inbound#000000000")
    assert held is not None and "text" not in held, (
        "held for its final; a provisional is not stored"
    )
    assert (held["shard"], held["sequence"]) == (AT.shard, AT.sequence), "where to read it again"
    item = transcripts.handle(svc, records.encode(final), AT)
    assert item is not None and item["text"] == "hello" and item["transcriber"] == "live"
    assert "pending" not in svc.transcripts.get("s-1", "inbound#000000000"), "the hold is replaced"
    assert (
        transcripts.handle(svc, marked, AT) is None
        and svc.transcripts.get("s-1", "inbound#000000000")["text"] == "hello"
    ), "a redelivered utterance record never replaces the stored transcript"
    assert transcripts.handle(svc, records.encode(final), AT) is not None  # redelivered
    given_back = records.encode(spoken(0, live=False))  # as the server sends a line it lost
    assert transcripts.handle(svc, given_back, AT)["text"] == "hello", "stored already: kept"  # type: ignore[index]
    assert ears.heard == []
    published = [(k, d.get("kind"), d["text"]) for k, d in bus.published]
    assert published == [
        ("Transcript Partial", None, "hel"),
        ("Utterance Transcribed", "provisional", "hell"),
        ("Utterance Transcribed", "final", "hello"),
    ], "the console sees the line grow and settle; the final is published once"
    said = {k + str(d.get("kind")): d for k, d in bus.published}
    assert said["Transcript PartialNone"]["result_id"] == "inbound-0"
    assert said["Transcript PartialNone"]["done"] is False
    assert said["Utterance Transcribedprovisional"]["settles"] == ["inbound-9"]
    assert said["Utterance Transcribedfinal"]["utterance"] == "inbound#000000000"


def test_a_batch_publishes_only_the_newest_of_each_live_line() -> None:
    """Of a line's records in one batch, only what a later record does not replace goes out."""
    from callstream.analytics import transcripts

    def line(result_id: str, kind: str, text: str, **more: Any) -> bytes:
        return records.encode(
            records.TranscriptRecord(
                stream_id=more.pop("stream_id", "s-1"),
                track="inbound",
                result_id=result_id,
                kind=kind,  # type: ignore[arg-type]
                text=text,
                start_ms=0.0,
                end_ms=float(len(text)),
                **more,
            )
        )

    batch = [
        line("A", "partial", "good"),  # 0: A grows later in the batch
        line("A", "partial", "good morning"),  # 1: settled by the provisional
        line("A", "partial", "good", stream_id="s-2"),  # 2: another stream's line A: kept
        records.encode(spoken(0, live=True)),  # 3: not a live line: never passed over
        line("B", "partial", "how"),  # 4: settled by A's final (settles B)
        b"not a record",  # 5: the handler quarantines it, the coalescing leaves it
        line("A", "provisional", "good morning how", utterance_index=0),  # 6: final follows
        line("C", "partial", "bye"),  # 7: the newest of its line: kept
        line("A", "final", "good morning how are you", utterance_index=0, settles=("B",)),
        line("D", "provisional", "hi", utterance_index=1),  # 9: its final is not in the batch
    ]
    assert transcripts.superseded(batch) == {0, 1, 4, 6}
    assert transcripts.superseded([]) == set()


def test_a_record_that_is_not_an_utterance_stream_record_is_refused_by_name() -> None:
    from callstream.analytics import transcripts
    from callstream.exceptions import RecordError

    svc, *_ = transcribing()
    event = records.EventRecord(stream_id="s-1", seq=0, name="dtmf", at_ms=0.0)
    with pytest.raises(RecordError, match="EventRecord does not belong on UtteranceStream"):
        transcripts.handle(svc, records.encode(event), AT)


# -- the summary consumer (finalize_call) ------------------------------------------------------


class Store:
    """The recordings bucket, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def find(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def put(self, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data

    def events(self, stream_id: str) -> list[dict[str, Any]]:
        import json

        prefix = f"events/{stream_id}/"
        return [json.loads(v) for k, v in sorted(self.objects.items()) if k.startswith(prefix)]


class Scored(Table):
    def for_stream(self, stream_id: str) -> list[dict[str, Any]]:
        return [v for (s, _), v in sorted(self.items.items()) if s == stream_id]


class Advances:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def advance(self, stream_id: str, call_uuid: str, state: str, **fields: Any) -> None:
        self.calls.append((stream_id, state))


def summarising(utterances: int, generation: int = 1) -> tuple[Any, Store, Scored, Bus]:
    import json

    from callstream.analytics import summary
    from callstream.analytics.recording import recording_keys

    store, table, bus = Store(), Scored(), Bus()
    sidecar = {
        "call_uuid": "c-1",
        "recording": "recordings/c-1/s-1.wav",
        "codec": "mulaw",
        "sample_rate": 8000,
        "duration_s": 40.0,
        "gaps": 0,
        "channels": ["inbound", "outbound"],
        "utterances": utterances,
        "generation": generation,
    }
    store.put(recording_keys("c-1", "s-1")[1], json.dumps(sidecar).encode())
    svc = summary.SummaryServices(store=store, transcripts=table, registry=Advances(), events=bus)  # type: ignore[arg-type]
    return svc, store, table, bus


def test_the_call_completes_when_its_last_utterance_is_scored_and_not_before() -> None:
    from callstream.analytics import summary

    svc, store, table, bus = summarising(utterances=2)
    first = {**said("hi", 0), "start_ms": 0.0, "end_ms": 1500.0, "sentiment": "NEUTRAL"}
    table.put(first)
    assert summary.handle(svc, {"stream_id": "s-1", "call_uuid": "c-1"}) == {
        "stream_id": "s-1",
        "waiting": "1 of 2 utterances scored",
    }
    table.put(
        {
            **said("bye", 1, "outbound"),
            "start_ms": 2000.0,
            "end_ms": 2500.0,
            "sentiment": "POSITIVE",
        }
    )
    done = summary.handle(svc, {"stream_id": "s-1", "call_uuid": "c-1"})
    assert [u["text"] for u in done["utterances"]] == ["hi", "bye"]
    assert done["talk_time_s"] == {"inbound": 1.5, "outbound": 0.5}
    assert [k for k, _ in bus.published] == ["Call Completed"]
    assert summary.summary_key("c-1", "s-1") in store.objects


def test_a_voice_agents_replies_join_the_digest_and_a_failing_model_leaves_the_extractive() -> None:
    """A bidirectional stream records the caller only: what the agent said comes from its turn
    notes, in time order. A model that fails (no access, throttled) leaves the extractive
    digest, and the call still completes."""
    import json

    from callstream.analytics import summary
    from callstream.exceptions import UpstreamError

    class Failing:
        name = "bedrock:m"

        def summarize(self, lines: Any) -> Any:
            raise UpstreamError("Bedrock did not summarise the call: AccessDenied")

    svc, store, table, bus = summarising(utterances=1)
    svc.summarizer = Failing()
    note = {
        "action": "turn",
        "caller": "my router is broken",
        "reply": "A technician will call you.",
    }
    store.put(
        "events/s-1/0000000009.json",
        json.dumps({"name": "agent", "at_ms": 4000, "data": note}).encode(),
    )
    store.put(
        "events/s-1/0000000003.json",
        json.dumps({"name": "dtmf", "at_ms": 100, "data": {}}).encode(),
    )
    text = "hello my router is broken"
    table.put({**said(text, 0), "start_ms": 0.0, "end_ms": 3000.0, "sentiment": "NEGATIVE"})
    done = summary.handle(svc, {"stream_id": "s-1", "call_uuid": "c-1"})
    assert done["digest"]["source"] == "extractive"
    assert done["digest"]["intent"] == text
    assert done["digest"]["action_items"] == ["A technician will call you."]
    ((kind, detail),) = bus.published
    assert kind == "Call Completed" and detail["digest"] == done["digest"]
    stored = json.loads(store.objects[summary.summary_key("c-1", "s-1")])
    assert stored["digest"]["outcome"] == "A technician will call you."


def test_an_earlier_connections_late_event_does_not_announce_the_call() -> None:
    from callstream.analytics import summary

    svc, _, _, bus = summarising(utterances=0, generation=2)
    answer = summary.handle(svc, {"stream_id": "s-1", "call_uuid": "c-1", "generation": 1})
    assert answer == {"stream_id": "s-1", "superseded_by_generation": 2} and bus.published == []


def test_a_score_before_the_recording_waits_for_it() -> None:
    from callstream.analytics import summary

    svc, store, _, _ = summarising(utterances=1)
    store.objects.clear()
    assert summary.handle(svc, {"stream_id": "s-1"})["waiting"] == "the recording"
