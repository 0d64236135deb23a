import base64
import json
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.audio import records
from callstream.audio.assembler import MAX_PENDING, Assembler
from callstream.audio.events import StreamState
from callstream.audio.events import records as records_of
from callstream.audio.protocol import parse_message
from callstream.audio.records import AudioRecord, EventRecord
from callstream.exceptions import InvalidAudioError, OutOfOrderError
from callstream.vocabulary import AudioLimits


def start(tracks=("inbound",), encoding="audio/x-mulaw", rate=8000, stream="s-1", call="c-1"):
    return parse_message(
        json.dumps(
            {
                "event": "start",
                "sequenceNumber": 0,
                "start": {
                    "streamId": stream,
                    "callId": call,
                    "tracks": list(tracks),
                    "mediaFormat": {"encoding": encoding, "sampleRate": rate},
                },
            }
        )
    )


def media(payload, chunk=None, track="inbound", seq=None):
    body = {"track": track, "payload": base64.b64encode(payload).decode()}
    if chunk is not None:
        body["chunk"] = chunk
    doc = {"event": "media", "streamId": "s-1", "media": body}
    if seq is not None:
        doc["sequenceNumber"] = seq
    return parse_message(json.dumps(doc))


def stop():
    return parse_message('{"event":"stop","streamId":"s-1"}')


def audio_of(records, track="inbound"):
    return b"".join(r.payload for r in records if isinstance(r, AudioRecord) and r.track == track)


def events(records, name=None):
    return [r for r in records if isinstance(r, EventRecord) and (name is None or r.name == name)]


def make(**overrides):
    return Assembler(limits=AudioLimits(**overrides))


def test_mulaw_frames_become_one_second_records_with_every_byte():
    asm = make()
    asm.receive(start(), now=1.0)
    frames = [bytes([i % 256]) * 160 for i in range(120)]
    for i, frame in enumerate(frames, start=1):
        asm.receive(media(frame, chunk=i), now=1.0 + i * 0.02)
    asm.receive(stop(), now=4.0)
    out = records_of(asm.events_ready())
    assert [r.seq for r in out] == list(range(len(out)))
    assert out[0].name == "start" and out[-1].name == "stop"  # type: ignore[union-attr]
    audio = [r for r in out if isinstance(r, AudioRecord)]
    n = audio[0].frames  # record_max_ms = 1 s, plus what fits in the KB a record is billed for
    assert 50 < n <= 57
    assert [r.frames for r in audio] == [n, n, 120 - 2 * n]
    assert [r.start_sample for r in audio] == [0, n * 160, 2 * n * 160]
    assert [r.first_frame for r in audio] == [1, n + 1, 2 * n + 1]
    assert audio_of(out) == b"".join(frames)
    assert out[-1].data["frames"] == 120 and out[-1].data["gaps"] == 0  # type: ignore[union-attr]


def test_l16_is_swapped_to_little_endian_and_capped_by_bytes():
    asm = make(record_max_bytes=2000, record_max_ms=10_000)
    asm.receive(start(encoding="audio/x-l16", rate=16000))
    wire = bytes(range(256)) * 5  # 640 bytes, big-endian samples
    for i in range(1, 5):
        asm.receive(media(wire[:640], chunk=i))
    asm.receive(stop())
    out = records_of(asm.events_ready())
    audio = [r for r in out if isinstance(r, AudioRecord)]
    assert all(len(r.payload) <= 2000 for r in audio)
    assert [r.frames for r in audio] == [3, 1]
    little = b"".join(wire[i + 1 : i + 2] + wire[i : i + 1] for i in range(0, 640, 2))
    assert audio_of(out) == little * 4
    assert audio[0].codec == "l16" and audio[0].sample_rate == 16000


def test_gap_is_reported_and_the_timeline_moves_on():
    asm = make()
    asm.receive(start())
    for chunk in (1, 2, 5, 6):
        asm.receive(media(b"\x01" * 160, chunk=chunk))
    asm.close("socket closed")
    out = records_of(asm.events_ready())
    (gap,) = events(out, "gap")
    assert gap.data == {
        "track": "inbound",
        "frames": 2,
        "first_frame": 3,
        "start_sample": 320,
        "samples": 320,
    }
    audio = [r for r in out if isinstance(r, AudioRecord)]
    assert [(r.first_frame, r.start_sample, r.frames) for r in audio] == [(1, 0, 2), (5, 640, 2)]
    assert out.index(gap) == out.index(audio[0]) + 1
    end = events(out, "close")[0]
    assert end.data["reason"] == "socket closed" and end.data["lost_frames"] == 2


def test_sequence_number_detects_gaps_on_a_single_track_without_chunk():
    asm = make()
    asm.receive(start())
    for seq in (1, 2, 4):
        asm.receive(media(b"\x01" * 160, seq=seq))
    asm.receive(stop())
    assert events(records_of(asm.events_ready()), "gap")[0].data["frames"] == 1


def test_duplicate_frames_are_dropped_and_counted():
    asm = make()
    asm.receive(start())
    for chunk in (1, 2, 2, 1, 3):
        asm.receive(media(bytes([chunk]) * 160, chunk=chunk))
    asm.receive(stop())
    assert audio_of(records_of(asm.events_ready())) == b"\x01" * 160 + b"\x02" * 160 + b"\x03" * 160
    assert asm.stats.tracks["inbound"].duplicates == 2


def test_events_keep_arrival_order_with_the_audio():
    asm = make()
    asm.receive(start(tracks=("both",)))
    asm.receive(media(b"\x01" * 160, chunk=1, track="inbound"))
    asm.receive(media(b"\x02" * 160, chunk=1, track="outbound"))
    asm.receive(parse_message('{"event":"dtmf","dtmf":{"digit":"7"}}'))
    asm.receive(media(b"\x03" * 160, chunk=2, track="inbound"))
    asm.note("agent", 0.0, {"action": "play", "ms": 40})
    asm.receive(parse_message('{"event":"playedStream","name":"t1"}'))
    asm.receive(parse_message('{"event":"clearedAudio"}'))
    asm.receive(stop())
    kinds = [
        r.name if isinstance(r, EventRecord) else f"{r.track}:{r.payload[0]}"
        for r in records_of(asm.events_ready())
    ]
    assert kinds == [
        "start",
        "inbound:1",
        "outbound:2",
        "dtmf",
        "inbound:3",
        "agent",
        "played_stream",
        "cleared_audio",
        "stop",
    ]


def test_late_track_lines_up_with_the_other():
    asm = make()
    asm.receive(start(tracks=("both",)))
    for chunk in range(1, 11):
        asm.receive(media(b"\x01" * 160, chunk=chunk, track="inbound"))
    asm.receive(media(b"\x02" * 160, chunk=1, track="outbound"))
    asm.receive(stop())
    out = [r for r in records_of(asm.events_ready()) if isinstance(r, AudioRecord)]
    assert {r.track: r.start_sample for r in out} == {"inbound": 0, "outbound": 9 * 160}


def test_media_before_start_is_held_and_replayed():
    asm = make()
    asm.receive(media(b"\x05" * 160, chunk=1))
    asm.receive(start())
    asm.receive(stop())
    assert audio_of(records_of(asm.events_ready())) == b"\x05" * 160


def test_too_much_before_start_is_refused():
    asm = make()
    for i in range(MAX_PENDING):
        asm.receive(media(b"\x05" * 160, chunk=i + 1))
    with pytest.raises(OutOfOrderError, match="before start"):
        asm.receive(media(b"\x05" * 160, chunk=MAX_PENDING + 1))


def test_second_start_and_anything_after_the_end_are_refused():
    asm = make()
    asm.receive(start())
    with pytest.raises(OutOfOrderError, match="second start"):
        asm.receive(start())
    asm.receive(stop())
    with pytest.raises(OutOfOrderError, match="after the stream ended"):
        asm.receive(media(b"\x01" * 160, chunk=1))
    asm.close("late close")  # idempotent after stop
    assert [r.name for r in events(records_of(asm.events_ready()))] == ["start", "stop"]


def test_odd_l16_frame_is_refused_and_the_stream_goes_on():
    asm = make()
    asm.receive(start(encoding="audio/x-l16", rate=8000))
    asm.receive(media(b"\x00\x01" * 160, chunk=1))
    with pytest.raises(InvalidAudioError, match="321 bytes"):
        asm.receive(media(b"\x00" * 321, chunk=2))
    asm.receive(media(b"\x00\x02" * 160, chunk=3))
    asm.receive(stop())
    out = records_of(asm.events_ready())
    assert len(audio_of(out)) == 640
    assert events(out, "gap")[0].data["frames"] == 1


def test_flush_due_bounds_how_long_audio_is_held():
    asm = make(record_max_ms=1000)
    asm.receive(start(), now=100.0)
    asm.receive(media(b"\x01" * 160, chunk=1), now=100.0)
    asm.flush_due(100.5)
    assert not [r for r in records_of(asm.events_ready()) if isinstance(r, AudioRecord)]
    asm.flush_due(101.2)  # 1 s, or the few frames more a record may carry (at most 1 KB)
    (record,) = records_of(asm.events_ready())
    assert isinstance(record, AudioRecord) and record.received_at == 100.0


def test_close_before_start_drops_held_messages_and_ends():
    asm = make()
    asm.receive(media(b"\x01" * 160, chunk=1))
    asm.close("no start")
    assert asm.state is StreamState.ENDED and records_of(asm.events_ready()) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["inbound", "outbound"]), st.booleans()),
        min_size=1,
        max_size=300,
    ),
    st.integers(min_value=320, max_value=4000),
    st.integers(min_value=20, max_value=2000),
)
def test_no_byte_lost_or_duplicated_and_every_gap_reported(plan, max_bytes, max_ms):
    """Any interleaving of two tracks with any frames dropped: every byte sent is in exactly
    one record, in order, and the dropped runs are exactly the reported gaps."""
    asm = make(record_max_bytes=max_bytes, record_max_ms=max_ms)
    asm.receive(start(tracks=("both",)))
    chunk = defaultdict(int)
    sent: dict[str, bytearray] = defaultdict(bytearray)
    dropped: dict[str, int] = defaultdict(int)
    started: set[str] = set()
    for n, (track, keep) in enumerate(plan):
        chunk[track] += 1
        payload = bytes([n % 251]) * 160
        if keep or track not in started:
            started.add(track)
            asm.receive(media(payload, chunk=chunk[track], track=track))
            sent[track] += payload
        else:
            dropped[track] += 1
    # frames dropped after a track's last sent frame are invisible, as on the wire
    asm.receive(stop())
    out = records_of(asm.events_ready())
    assert [r.seq for r in out] == list(range(len(out)))
    for track in ("inbound", "outbound"):
        assert audio_of(out, track) == bytes(sent[track])
        records = [r for r in out if isinstance(r, AudioRecord) and r.track == track]
        assert all(len(r.payload) <= max(max_bytes, 160) for r in records)
        reported = sum(g.data["frames"] for g in events(out, "gap") if g.data["track"] == track)
        last = max((r.first_frame + r.frames - 1 for r in records), default=0)
        assert reported == last - len(sent[track]) // 160
        # the timeline: each record starts where its first frame belongs
        origin = records[0].start_sample - (records[0].first_frame - 1) * 160 if records else 0
        for r in records:
            assert r.start_sample == origin + (r.first_frame - 1) * 160


@pytest.mark.parametrize("chunk", [2**70, -1, "12x"])
def test_out_of_range_frame_numbers_are_refused_and_the_stream_goes_on(chunk):
    from callstream.exceptions import InvalidMessageError

    asm = make()
    asm.receive(start())
    asm.receive(media(b"\x01" * 160, chunk=1))
    with pytest.raises(InvalidMessageError, match="chunk"):
        asm.receive(media(b"\x02" * 160, chunk=chunk))
    asm.receive(media(b"\x03" * 160, chunk=2))
    asm.receive(stop())
    out = records_of(asm.events_ready())
    assert audio_of(out) == b"\x01" * 160 + b"\x03" * 160
    assert records_encode_all(out)


def records_encode_all(out) -> bool:
    from callstream.audio import records

    return all(records.decode(records.encode(r)) == r for r in out)


@pytest.mark.parametrize(("encoding", "rate"), [("audio/x-mulaw", 8000), ("audio/x-l16", 8000)])
def test_time_capped_records_fill_the_kilobyte_they_are_billed_for(encoding, rate):
    stream = "MZ" + "7" * 34  # Vobiz-length ids
    asm = Assembler(limits=AudioLimits(), call_uuid="c" * 36)
    asm.receive(start(encoding=encoding, rate=rate, stream=stream, call="c" * 36))
    frame = bytes(160 if encoding == "audio/x-mulaw" else 320)
    for n in range(1, 500):
        asm.receive(media(frame, chunk=n))
    audio = [r for r in records_of(asm.events_ready()) if isinstance(r, AudioRecord)]
    one_second = 50 * len(frame)
    header = records.audio_header_bytes(stream, "c" * 36)
    paid_kb = -(-(header + one_second) // 1024)
    for record in audio:
        assert record.frames >= 50, "never shorter than the time cap"
        assert len(records.encode(record)) <= paid_kb * 1024, "never into another KB"
    if encoding == "audio/x-mulaw":  # 8 KB + header spills into a 9th KB: fill it
        assert audio[0].frames == (paid_kb * 1024 - header) // len(frame) > 50


# -- the typed events the session acts on ---------------------------------------------------


def message(doc):
    return parse_message(json.dumps({"streamId": "s-1", **doc}))


def test_each_message_gives_its_event_once_in_order():
    from callstream.audio import events as ev

    asm = make()
    asm.receive(start(tracks=("inbound", "outbound")))
    asm.receive(message({"event": "dtmf", "dtmf": {"digit": "7", "track": "inbound"}}))
    asm.receive(message({"event": "playedStream", "name": "turn-1"}))
    asm.receive(message({"event": "clearedAudio"}))
    asm.receive(message({"event": "transcriptPartial"}))  # one Vobiz may add later
    asm.receive(media(bytes(160), chunk=1))
    asm.receive(media(bytes(160), chunk=3))  # frame 2 lost
    asm.flush_due(10.0)  # stop waiting for it
    asm.receive(stop())
    got = asm.events_ready()
    assert [e for e in got if not isinstance(e, ev.AudioReady)] == [
        ev.Started("s-1", "s-1", "c-1", "mulaw", 8000, ("inbound", "outbound")),
        ev.Dtmf("7", "inbound"),
        ev.Played("turn-1"),
        ev.Cleared(),
        ev.Unknown("transcriptPartial"),
        ev.Gap("inbound", 1, "lost"),
        ev.Ended("stop", 2, 1),
    ]
    assert asm.events_ready() == [] and asm.state is StreamState.ENDED
    assert asm.stats.frames == 2 and asm.stats.unknown_events == 1  # counted once, here


def test_every_event_that_is_written_carries_its_record_encoded_in_stream_order():
    """One output: the session writes each event's bytes as handed, and nothing else."""
    from callstream.audio import events as ev
    from callstream.audio.vad import Utterance

    class OneUtterance:  # a segmenter that hears one utterance in the first second
        active = False

        def __init__(self) -> None:
            self.pcm = bytearray()

        def receive(self, pcm: bytes, start_sample: int) -> None:
            self.pcm += pcm

        def utterances_ready(self):
            if len(self.pcm) != 16000:
                return []
            return [Utterance("inbound", 8000, 0, 0, 8000, bytes(self.pcm))]

        def close(self):
            return []

    asm = Assembler(limits=AudioLimits(), segmenter_factory=lambda r, t: OneUtterance())
    asm.receive(start(), now=1.0)
    for n in range(1, 120):
        asm.receive(media(bytes([n]) * 160, chunk=n), now=1.0 + n * 0.02)
    asm.receive(message({"event": "dtmf", "dtmf": {"digit": "1", "track": "inbound"}}), now=4.0)
    asm.receive(stop(), now=4.1)
    got = asm.events_ready()
    written = [e for e in got if e.write is not None]
    assert {type(e) for e in written} >= {ev.Started, ev.AudioReady, ev.Dtmf, ev.UtteranceFound}
    for event in written:
        assert event.write.data == records.encode(event.record)
        assert event.write.stream == ("utterances" if type(event) is ev.UtteranceFound else "audio")
    audio = [e for e in written if e.write.stream == "audio"]
    assert [e.record.seq for e in audio] == list(range(len(audio)))
    assert type(audio[-1]) is ev.Ended and audio[-1].record.name == "stop"
    assert sum(e.write.ms for e in audio) == pytest.approx(119 * 20)
    assert [e for e in got if e.write is None and not isinstance(e, ev.SpeechBegan)] == []


def test_media_is_decoded_for_a_listener_only_and_once(monkeypatch):
    from callstream.audio import assembler as module
    from callstream.audio import codecs
    from callstream.audio.events import MediaDecoded, SpeechBegan
    from callstream.audio.vad import Segmenter

    decoded = []
    real = codecs.ulaw_decode

    def counting(payload: bytes) -> bytes:
        decoded.append(len(payload))
        return real(payload)

    monkeypatch.setattr(module.codecs, "ulaw_decode", counting)
    frame = bytes([0x00, 0x80] * 80)  # loud μ-law: speech to the VAD
    cfg = AudioLimits()
    quiet = Assembler(limits=cfg)
    quiet.receive(start())
    quiet.receive(media(frame, chunk=1))
    assert quiet.events_ready()[1:] == [] and decoded == []  # no listener, no VAD: no decode

    listener = Assembler(
        limits=cfg,
        segmenter_factory=lambda r, t: Segmenter(r, t, cfg),
        decode_media=True,
    )
    listener.receive(start())
    for n in range(1, 51):
        listener.receive(media(frame, chunk=n))
    got = listener.events_ready()[1:]
    media_events = [e for e in got if isinstance(e, MediaDecoded)]
    assert len(decoded) == 50, "one decode per frame, shared by the VAD and the listener"
    assert [e.start_sample for e in media_events] == [160 * n for n in range(50)]
    assert media_events[0].pcm == real(frame)
    assert [e for e in got if isinstance(e, SpeechBegan)] == [SpeechBegan("inbound")]


def test_a_start_for_another_call_or_stream_than_the_tokens_is_refused():
    from callstream.exceptions import StreamMismatchError, TokenError

    for asm, start_message in (
        (Assembler(limits=AudioLimits(), call_uuid="c-9"), start()),
        (Assembler(limits=AudioLimits(), stream_id="s-9"), start()),
    ):
        with pytest.raises(StreamMismatchError) as refused:
            asm.receive(start_message)
        assert isinstance(refused.value, TokenError) and asm.state is StreamState.NEW
    same = Assembler(limits=AudioLimits(), call_uuid="c-1", stream_id="s-1")
    same.receive(start())
    assert same.state is StreamState.STARTED


def test_a_dtmf_flood_is_held_to_a_rate_told_once_a_second_and_counted_at_the_end():
    """600 digits in 10 ms on one socket were 600 bus events and 602 S3 objects; now the first
    20 (the burst) pass, one ``limited`` record tells of the rest, and the end counts them."""
    from callstream.audio import events as ev

    asm = make()
    asm.receive(start(), now=100.0)
    asm.receive(media(bytes(160), chunk=1), now=100.0)
    for i in range(600):
        digit = {"event": "dtmf", "dtmf": {"digit": str(i % 10), "track": "inbound"}}
        asm.receive(message(digit), now=100.0 + i * 0.01 / 600)
    got = asm.events_ready()
    assert sum(isinstance(e, ev.Dtmf) for e in got) == 20
    assert [e for e in got if isinstance(e, ev.Limited)] == [ev.Limited("dtmf", 1)]
    written = [e for e in got if e.write is not None]
    assert len(written) <= 20 + 1 + 3, "the open audio record is flushed by each kept event only"
    # a second later a person presses keys again at a person's pace: all kept
    for i in range(10):
        digit = {"event": "dtmf", "dtmf": {"digit": "5", "track": "inbound"}}
        asm.receive(message(digit), now=101.5 + i * 0.1)
    assert sum(isinstance(e, ev.Dtmf) for e in asm.events_ready()) == 10
    # checkpoints a hostile peer repeats have a bucket of their own
    for i in range(200):
        asm.receive(message({"event": "playedStream", "name": f"n-{i}"}), now=103.0)
    marks = asm.events_ready()
    assert sum(isinstance(e, ev.Played) for e in marks) == 50
    assert [e.what for e in marks if isinstance(e, ev.Limited)] == ["mark"]
    asm.receive(stop(), now=104.0)
    (end,) = events(records_of(asm.events_ready()), "stop")
    assert (end.data["dtmf_dropped"], end.data["mark_dropped"]) == (580, 150)
