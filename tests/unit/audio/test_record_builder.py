"""The record builder on its own: one sequence for audio and events, encoded once, and a
reconnect's numbers after the earlier connection's."""

from __future__ import annotations

from callstream.audio.batching import OpenRecord
from callstream.audio.continuation import SEQ_STRIDE, UTTERANCE_STRIDE, Continuation
from callstream.audio.counts import AssemblerStats, StreamTotals
from callstream.audio.record_builder import RecordBuilder, end_data
from callstream.audio.records import AudioRecord, EventRecord, UtteranceRecord, decode
from callstream.audio.vad import Utterance


def builder(continuation: Continuation | None = None) -> tuple[RecordBuilder, AssemblerStats]:
    stats = AssemblerStats()
    out = RecordBuilder(
        stream_id="s-1",
        call_uuid="c-1",
        codec="mulaw",
        sample_rate=8000,
        stats=stats,
        continuation=continuation,
    )
    return out, stats


def filled(frames: int) -> OpenRecord:
    record = OpenRecord("inbound", 10_000)
    for i in range(frames):
        record.add(i + 1, bytes([i]) * 160, i * 160, 1000 + 20 * i, 5.0 + i)
    return record


def test_audio_and_events_share_one_sequence_each_encoded_as_it_decodes() -> None:
    out, stats = builder()
    audio = out.audio(filled(3))
    event, write = out.event("dtmf", 60.0, 9.0, {"digit": "5"})
    assert [audio.record.seq, event.seq] == [0, 1] and stats.records == 2
    back = decode(audio.write.data)
    assert isinstance(back, AudioRecord) and back.payload == audio.record.payload
    assert back.frames == 3 and back.first_frame == 1 and audio.write.ms == 60.0
    assert decode(write.data) == event and isinstance(event, EventRecord)
    assert event.at_ms == 60.0 and event.data == {"digit": "5"} and write.stream == "audio"


def test_taking_the_open_record_empties_it_for_the_next_frame() -> None:
    out, _ = builder()
    record = filled(2)
    out.audio(record)
    assert not record.buf and record.frames == 0


def test_a_reconnect_numbers_records_and_utterances_after_the_earlier_connection() -> None:
    cont = Continuation(stream_id="s-1", generation=3, position_ms=0.0, outage_ms=0.0)
    out, stats = builder(cont)
    assert out.audio(filled(1)).record.seq == 2 * SEQ_STRIDE
    found = out.utterances("inbound", [Utterance("inbound", 8000, 0, 0, 160, bytes(320))], 1.0)
    (utterance,) = found
    assert utterance.record.index == 2 * UTTERANCE_STRIDE and stats.utterances == 1
    back = decode(utterance.write.data)
    assert isinstance(back, UtteranceRecord) and back.source_codec == "mulaw"
    assert utterance.write.stream == "utterances"


def test_the_end_counts_this_connection_and_the_whole_call_stream() -> None:
    stats = AssemblerStats(utterances=2)
    data = end_data({"reason": "drain"}, stats, StreamTotals(2, 900, 5))
    assert data["reason"] == "drain" and data["utterances"] == 2
    assert (data["generation"], data["stream_frames"], data["stream_utterances"]) == (2, 900, 5)
