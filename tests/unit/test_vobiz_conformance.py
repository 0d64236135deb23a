"""What Vobiz documents (docs/protocol.md), checked at unit level against the pure core.

Every expectation here comes from docs/protocol.md, and where a wire format is built it is built by
the simulator's own code (``local.vobiz_wire``), never by the product's.
"""

import base64
import json

import numpy as np
import pytest

from callstream.audio import codecs, protocol
from callstream.audio.assembler import Assembler
from callstream.audio.continuation import Continuation
from callstream.audio.events import records as records_of
from callstream.audio.protocol import MediaMessage, StartMessage, parse_message
from callstream.audio.records import AudioRecord, EventRecord
from callstream.audio.timeline import RESTART_FRAMES
from callstream.control.callbacks import SignedRequest, verify_request
from callstream.exceptions import InvalidStartError
from callstream.vocabulary import AudioLimits
from local import vobiz_wire

# ------------------------------------------------------------------ the simulator's own codecs


def test_the_simulators_mulaw_is_its_own_and_agrees_with_g711_on_every_value():
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert vobiz_wire.mulaw_encode(pcm) == codecs.ulaw_encode(pcm)  # two independent codes
    every = bytes(range(256))
    assert vobiz_wire.mulaw_decode(every) == codecs.ulaw_decode(every)


def test_the_simulator_imports_nothing_from_callstream():
    """Not even indirectly: a shared module would carry a shared mistake into both sides."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import local.vobiz_sim, local.vobiz_frames, local.vobiz_wire; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('callstream', 'stream_server')))"
    )
    root = Path(__file__).parents[2]
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == "[]"


# ------------------------------------------------------------------ talk-back byte order


def test_play_audio_l16_goes_little_endian_as_vobiz_plays_it():
    pcm = np.array([1, -2, 300, -32768], dtype="<i2").tobytes()
    frame = json.loads(protocol.play_audio("s", pcm, "l16", 24000))
    assert frame["media"] == {
        "contentType": "audio/x-l16",
        "sampleRate": 24000,
        "payload": base64.b64encode(pcm).decode(),  # the same bytes: little-endian
    }
    assert "streamId" not in frame  # docs/protocol.md §2: playAudio carries event and media only


# ------------------------------------------------------------------ tolerant start and media


def flat_start(**extra):
    return {
        "event": "start",
        "sequenceNumber": "0",
        "streamId": "s-9",
        "callId": "c-9",
        "accountId": 12345,
        "tracks": "Inbound,OUTBOUND",
        "contentType": "audio/x-l16;rate=16000",
        **extra,
    }


def test_the_older_flat_start_is_read():
    msg = parse_message(json.dumps(flat_start()))
    assert isinstance(msg, StartMessage)
    assert (msg.stream, msg.call, msg.start.account_id) == ("s-9", "c-9", "12345")
    assert msg.media_format() == ("l16", 16000)
    assert msg.track_list == ("inbound", "outbound")


@pytest.mark.parametrize(
    ("fmt", "requested", "expected"),
    [
        ({"encoding": "audio/x-l16", "sampleRate": "24000"}, None, ("l16", 24000)),
        ({"encoding": "audio/x-l16", "sampleRate": 16000.0}, None, ("l16", 16000)),
        ({"encoding": "audio/x-l16;rate=8000"}, None, ("l16", 8000)),
        ({"encoding": "audio/x-l16"}, "audio/x-l16;rate=24000", ("l16", 24000)),
        ({"encoding": "audio/x-mulaw"}, None, ("mulaw", 8000)),
        (None, "audio/x-mulaw;rate=8000", ("mulaw", 8000)),
    ],
)
def test_a_format_start_does_not_give_fully_falls_back_to_what_was_requested(
    fmt, requested, expected
):
    doc = {"event": "start", "start": {"streamId": "s", "tracks": ["inbound"]}}
    if fmt is not None:
        doc["start"]["mediaFormat"] = fmt
    msg = parse_message(json.dumps(doc))
    assert isinstance(msg, StartMessage)
    if fmt == {"encoding": "audio/x-mulaw"}:
        requested = "audio/x-mulaw;rate=8000"
    assert msg.media_format(requested) == expected


def test_a_start_with_no_format_and_nothing_requested_is_refused_precisely():
    msg = parse_message(json.dumps({"event": "start", "start": {"streamId": "s"}}))
    assert isinstance(msg, StartMessage)
    with pytest.raises(InvalidStartError, match="no mediaFormat"):
        msg.media_format(None)
    with pytest.raises(InvalidStartError, match="opus"):
        parse_message(
            json.dumps(
                {"event": "start", "start": {"streamId": "s", "mediaFormat": {"encoding": "opus"}}}
            )
        ).media_format("audio/x-mulaw;rate=8000")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("chunk", "seq", "track"),
    [("6", "7", "INBOUND"), (6.0, 7.0, "Inbound"), ("6.0", 7, "inbound")],
)
def test_media_numbers_as_strings_or_integral_floats_and_any_track_case(chunk, seq, track):
    doc = {
        "event": "media",
        "sequenceNumber": seq,
        "media": {"track": track, "chunk": chunk, "timestamp": 5.0, "payload": "AQI="},
    }
    msg = parse_message(json.dumps(doc))
    assert isinstance(msg, MediaMessage) and msg.media.track == "inbound"
    assert protocol.as_int(msg.media.chunk, "chunk") == 6
    assert protocol.as_int(msg.sequence_number, "sequenceNumber") == 7


def test_a_non_integral_number_is_refused_not_truncated():
    with pytest.raises(protocol.InvalidMessageError):
        protocol.as_int(7.5, "media.chunk")
    with pytest.raises(protocol.InvalidMessageError):
        protocol.as_int("7.5", "media.chunk")


def test_extra_headers_as_an_object_of_any_scalars():
    doc = {**flat_start(), "extra_headers": {"tenant": "acme", "tier": 3, "vip": True}}
    msg = parse_message(json.dumps(doc))
    assert isinstance(msg, StartMessage)
    assert msg.extra_headers == {"tenant": "acme", "tier": "3", "vip": "true"}


# ------------------------------------------------------------------ frame numbering


def start_msg(tracks=("inbound",), rate=8000, encoding="audio/x-mulaw", stream="s-1"):
    return parse_message(
        json.dumps(
            {
                "event": "start",
                "start": {
                    "streamId": stream,
                    "tracks": list(tracks),
                    "mediaFormat": {"encoding": encoding, "sampleRate": rate},
                },
            }
        )
    )


def media(chunk=None, seq=None, fill=1, size=160, timestamp=None):
    body = {"track": "inbound", "payload": base64.b64encode(bytes([fill]) * size).decode()}
    if chunk is not None:
        body["chunk"] = chunk
    if timestamp is not None:
        body["timestamp"] = timestamp
    doc = {"event": "media", "media": body}
    if seq is not None:
        doc["sequenceNumber"] = seq
    return parse_message(json.dumps(doc))


def audio(out):
    return b"".join(r.payload for r in out if isinstance(r, AudioRecord))


def named(out, name):
    return [r for r in out if isinstance(r, EventRecord) and r.name == name]


def test_swapped_frames_are_put_back_in_order_not_dropped():
    asm = Assembler(limits=AudioLimits())
    asm.receive(start_msg())
    for chunk in (1, 2, 4, 3, 5):
        asm.receive(media(chunk=chunk, fill=chunk))
    asm.close("close")
    out = records_of(asm.events_ready())
    assert audio(out) == b"".join(bytes([n]) * 160 for n in (1, 2, 3, 4, 5))
    assert named(out, "gap") == [] and asm.stats.tracks["inbound"].reordered == 1


def test_a_missing_frame_that_never_comes_is_a_gap_after_the_window():
    asm = Assembler(limits=AudioLimits())
    asm.receive(start_msg())
    for chunk in (1, 2, 4, 5, 6, 7, 8):
        asm.receive(media(chunk=chunk, fill=chunk))
    asm.close("close")
    out = records_of(asm.events_ready())
    (gap,) = named(out, "gap")
    assert gap.data["frames"] == 1 and gap.data["first_frame"] == 3
    assert audio(out) == b"".join(bytes([n]) * 160 for n in (1, 2, 4, 5, 6, 7, 8))


def test_numbering_that_jumps_back_is_a_restart_and_the_audio_is_kept():
    asm = Assembler(limits=AudioLimits())
    asm.receive(start_msg())
    frames = [*range(1, 41), *range(1, 11)]  # Vobiz restarted its chunk counter at 1
    for n, chunk in enumerate(frames):
        asm.receive(media(chunk=chunk, fill=n % 250))
    asm.close("close")
    out = records_of(asm.events_ready())
    assert len(audio(out)) == 160 * len(frames)  # nothing dropped as a "duplicate"
    (renumbered,) = named(out, "renumbered")
    assert renumbered.data == {"track": "inbound", "from_frame": 41, "to_frame": 1}
    assert named(out, "gap") == [] and asm.stats.tracks["inbound"].duplicates == 0
    assert RESTART_FRAMES < 40


def test_dtmf_between_media_never_makes_a_gap_in_sequence_numbering():
    asm = Assembler(limits=AudioLimits())
    asm.receive(start_msg())
    asm.receive(media(seq=1))
    asm.receive(media(seq=2))
    asm.receive(parse_message('{"event":"dtmf","sequenceNumber":3,"dtmf":{"digit":"5"}}'))
    asm.receive(media(seq=4))
    asm.receive(media(seq=5))
    asm.close("close")
    out = records_of(asm.events_ready())
    assert named(out, "gap") == [] and len(audio(out)) == 4 * 160


# ------------------------------------------------------------------ a reconnect continues


def test_a_reconnect_continues_the_call_stream_with_the_outage_as_a_gap():
    cont = Continuation(
        stream_id="first", generation=2, position_ms=1000, outage_ms=500, previous_stream_id="a"
    )
    asm = Assembler(limits=AudioLimits(), continuation=cont)
    asm.receive(start_msg(stream="second"))
    asm.receive(media(chunk=1))
    asm.close("close")
    out = records_of(asm.events_ready())
    assert {r.stream_id for r in out} == {"first"} and asm.vobiz_stream_id == "second"
    assert min(r.seq for r in out) >= 2**32  # after every record of the first connection
    (gap,) = named(out, "gap")
    assert (gap.data["start_sample"], gap.data["samples"]) == (8000, 4000)
    assert gap.data["reason"] == "reconnect"
    (first_audio,) = [r for r in out if isinstance(r, AudioRecord)]
    assert first_audio.start_sample == 12000
    (start,) = named(out, "start")
    assert start.data["generation"] == 2 and start.data["continues"] == "a"


T0 = 1_732_450_000_000  # Vobiz's timestamps: epoch ms (docs/protocol.md §2)


def first_connection(frames: int) -> Assembler:
    """A first connection that took ``frames`` stamped frames, then dropped."""
    asm = Assembler(limits=AudioLimits(record_max_ms=100))
    asm.receive(start_msg(stream="a"))
    for n in range(frames):
        asm.receive(media(chunk=n + 1, timestamp=str(T0 + 20 * n)))
    asm.close("close")
    return asm


def reconnect(first: Assembler, wall_outage_ms: float, stamps) -> list:
    """Vobiz's reconnect continuing ``first``; ``stamps``: its frames' timestamps."""
    cont = Continuation(
        stream_id="first",
        generation=2,
        position_ms=first.position_ms,
        outage_ms=wall_outage_ms,
        media_clock_ms=first.media_clock_ms,
        previous_stream_id="a",
    )
    asm = Assembler(limits=AudioLimits(), continuation=cont)
    asm.receive(start_msg(stream="second"))
    for n, stamp in enumerate(stamps):
        asm.receive(media(chunk=n + 1, timestamp=stamp))
    asm.close("close")
    return records_of(asm.events_ready())


@pytest.mark.parametrize("wall_outage_ms", [0.0, 200.0, 1700.0])
def test_a_reconnects_outage_is_measured_on_vobizs_timestamps_not_on_a_late_loop(
    wall_outage_ms,
):
    """The first connection's last frame ends at T0 + 1000 ms; the reconnect's first frame is
    stamped T0 + 1300: 300 ms were lost, whatever our loop's clock saw (a stalled loop reads
    the close late, and the outage short; CI lost a call's placement that way)."""
    first = first_connection(50)
    assert first.position_ms == 1000 and first.media_clock_ms == T0 + 1000
    out = reconnect(first, wall_outage_ms, [str(T0 + 1300 + 20 * n) for n in range(3)])
    (gap,) = named(out, "gap")
    assert (gap.data["start_sample"], gap.data["samples"]) == (8000, 2400)
    assert gap.data["measured_by"] == "timestamps"
    assert min(r.start_sample for r in out if isinstance(r, AudioRecord)) == 8000 + 2400


@pytest.mark.parametrize(
    "stamps",
    [
        [None, None],  # a reconnect without timestamps
        ["soon", "later"],  # unreadable ones
        [str(T0 - 60_000), str(T0 - 59_980)],  # a clock that went back a minute
        [str(T0 + 3_600_000), str(T0 + 3_600_020)],  # or an hour ahead
    ],
)
def test_a_reconnect_whose_timestamps_cannot_be_believed_is_measured_by_our_clock(stamps):
    first = first_connection(50)
    out = reconnect(first, 500.0, stamps)
    (gap,) = named(out, "gap")
    assert (gap.data["samples"], gap.data["measured_by"]) == (4000, "clock")
    assert len(audio(out)) == 2 * 160, "no frame is lost to a bad timestamp"


def test_timestamps_that_jitter_back_a_little_are_no_outage():
    first = first_connection(50)
    out = reconnect(first, 900.0, [str(T0 + 1000 - 40), str(T0 + 1000 - 20)])
    assert named(out, "gap") == [], "no gap: the line came straight back"
    assert min(r.start_sample for r in out if isinstance(r, AudioRecord)) == 8000


def test_l16_24k_is_a_stream_format_end_to_end_in_the_core():
    asm = Assembler(limits=AudioLimits())
    asm.receive(start_msg(encoding="audio/x-l16", rate=24000))
    asm.receive(media(chunk=1, size=960))
    asm.close("close")
    (record,) = [r for r in records_of(asm.events_ready()) if isinstance(r, AudioRecord)]
    assert (record.sample_rate, len(record.payload)) == (24000, 960)


# ------------------------------------------------------------------ signatures


URL = "https://api.example.com/vobiz/stream-status?x=1"
PARAMS = {"Event": "StartStream", "StreamID": "s-1", "CallUUID": "c-1"}


def request(**headers):
    return SignedRequest(method="POST", url=URL, params=dict(PARAMS), **headers)


def test_v3_and_v2_signatures_made_by_the_simulator_verify():
    v3 = vobiz_wire.sign_v3("tok", "POST", URL, PARAMS, "n1")
    assert verify_request(request(nonce="n1", signatures=v3), "tok")
    v2 = vobiz_wire.sign_v2("tok", URL, "n2")
    assert verify_request(request(nonce="", signatures="", v2_nonce="n2", v2_signatures=v2), "tok")
    assert not verify_request(request(nonce="n1", signatures=v3), "other-token")


def test_the_url_only_v3_form_does_not_cover_the_body_so_it_needs_an_opt_in():
    url_only = vobiz_wire.sign_v3_url_only("tok", URL, "n3")
    forged = request(nonce="n3", signatures=url_only)  # any body would verify with it
    assert not verify_request(forged, "tok")
    assert verify_request(forged, "tok", url_only=True)


# ------------------------------------------------------------------ answer XML, read as Vobiz


@pytest.mark.parametrize(
    ("xml", "hangs_up"),
    [
        ('<Response><Stream bidirectional="false">wss://x/a</Stream></Response>', True),
        (
            '<Response><Stream bidirectional="true" audioTrack="both" keepCallAlive="true">'
            "wss://x/a</Stream></Response>",
            True,
        ),
        (
            '<Response><Stream keepCallAlive="true">wss://x/a</Stream></Response>',
            True,  # keepCallAlive needs bidirectional
        ),
        (
            '<Response><Stream bidirectional="true" audioTrack="inbound" keepCallAlive="true">'
            "wss://x/a</Stream></Response>",
            False,
        ),
        (
            '<Response><Stream audioTrack="both">wss://x/a</Stream>'
            "<Dial><Number>+1</Number></Dial></Response>",
            False,
        ),
    ],
)
def test_the_simulator_reads_answer_xml_by_vobizs_rules(xml, hangs_up):
    plan = vobiz_wire.read_answer(xml)
    assert (plan.hangup_cause == vobiz_wire.END_OF_XML) is hangs_up
