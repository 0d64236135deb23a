import asyncio
import base64
import json

import pytest

from callstream.exceptions import ConflictError
from stream_server.talkback import CHUNK_MS, Talkback


class Socket:
    """Collects what the controller sends, as parsed JSON."""

    def __init__(self):
        self.frames = []

    async def send(self, frame: bytes) -> None:
        self.frames.append(json.loads(frame))

    def events(self):
        return [f["event"] for f in self.frames]


def controller(socket, codec="mulaw", rate=8000, bidirectional=True, **kwargs):
    return Talkback(
        socket.send,
        stream_id="s-1",
        codec=codec,
        sample_rate=rate,
        bidirectional=bidirectional,
        **kwargs,
    )


async def test_play_sends_20ms_frames_in_the_stream_format():
    """20 ms a playAudio, the cadence Vobiz's own agent sends (issue 22: we sent 40 ms)."""
    socket = Socket()
    talk = controller(socket, codec="l16", rate=16000, lead_ms=10_000)
    pcm = (b"\x01\x02" * 16000)[: 2 * 8010]  # 0.5 s and 10 samples at 16 kHz
    sent = await talk.play(pcm, 16000)
    assert sent == 520  # 26 frames of 20 ms, the last one padded with silence
    assert socket.events() == ["playAudio"] * 26
    assert CHUNK_MS == 20
    media = socket.frames[0]["media"]
    assert media["contentType"] == "audio/x-l16" and media["sampleRate"] == 16000
    wire = base64.b64decode(media["payload"])
    assert len(wire) == 16000 * 2 * CHUNK_MS // 1000
    assert wire[:4] == b"\x01\x02\x01\x02"  # little-endian: Vobiz plays playAudio L16 LE


async def test_play_is_paced_to_the_lead():
    socket = Socket()
    loop = asyncio.get_running_loop()
    talk = controller(socket, lead_ms=100)
    began = loop.time()
    await talk.play(b"\x00\x00" * 8000, 8000)  # 1 s of audio
    elapsed = loop.time() - began
    # with at most 100 ms queued ahead, sending 1 s of audio takes about 0.9 s of real time
    assert elapsed >= 0.8
    assert talk.queued_ms <= 100 + CHUNK_MS


async def test_checkpoint_resolves_on_played_stream():
    socket = Socket()
    talk = controller(socket)
    waiting = asyncio.create_task(talk.checkpoint("turn-1"))
    await asyncio.sleep(0.01)
    assert socket.frames[-1] == {"event": "checkpoint", "streamId": "s-1", "name": "turn-1"}
    talk.on_played("other")
    talk.on_played("turn-1")
    assert await waiting == "played"


async def test_checkpoint_times_out():
    talk = controller(Socket())
    assert await talk.checkpoint("never", timeout_s=0.05) == "timeout"


async def test_clear_stops_playback_and_holds_audio_until_cleared():
    socket = Socket()
    talk = controller(socket, lead_ms=40, clear_backstop_s=5)
    playing = asyncio.create_task(talk.play(b"\x00\x00" * 8000 * 3, 8000))  # 3 s
    pending = asyncio.create_task(talk.checkpoint("greeting"))
    await asyncio.sleep(0.2)
    await talk.clear()
    assert await asyncio.wait_for(playing, 1) < 3000, "the clear cut the play short"
    assert await pending == "cleared"
    assert socket.events()[-1] == "clearAudio"
    held = asyncio.create_task(talk.play(b"\x00\x00" * 320, 8000))
    await asyncio.sleep(0.1)
    assert socket.events()[-1] == "clearAudio", "no audio between clearAudio and clearedAudio"
    talk.on_cleared()
    assert await asyncio.wait_for(held, 1) == 40
    assert socket.events()[-1] == "playAudio"


async def test_clear_backstop_releases_audio_without_cleared_audio():
    socket = Socket()
    talk = controller(socket, clear_backstop_s=0.1)
    await talk.clear()
    assert await asyncio.wait_for(talk.play(b"\x00\x00" * 160, 8000), 1) == 20


async def test_one_way_stream_refuses_talk_back():
    talk = controller(Socket(), bidirectional=False)
    with pytest.raises(ConflictError, match="not bidirectional"):
        await talk.play(b"\x00\x00", 8000)
    with pytest.raises(ConflictError):
        await talk.clear()
    with pytest.raises(ConflictError):
        await talk.checkpoint("x")


async def test_play_and_end_on_a_24k_l16_stream_carry_its_format_little_endian():
    socket = Socket()
    talk = controller(socket, codec="l16", rate=24000, lead_ms=10_000, checkpoint_timeout_s=0.05)
    pcm = b"\x01\x02" * 8000  # 1 s at 8 kHz: resampled to the stream's 24 kHz
    assert await talk.end(pcm, 8000, timeout_s=0.05) == "timeout"  # no playedStream came
    plays = [f for f in socket.frames if f["event"] == "playAudio"]
    assert {(p["media"]["contentType"], p["media"]["sampleRate"]) for p in plays} == {
        ("audio/x-l16", 24000)
    }
    assert all(len(base64.b64decode(p["media"]["payload"])) == 24 * 2 * CHUNK_MS for p in plays)
    assert socket.events()[-2:] == ["checkpoint", "stop"]  # stop only after the goodbye
    assert socket.frames[-1] == {"event": "stop", "streamId": "s-1"} and talk.stop_sent


async def wait_state(talk, play_id, *states):
    for _ in range(500):  # 5 s
        if (found := talk.play_state(play_id))["state"] in states:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"{play_id} is still {found['state']}, not one of {states}")


async def test_a_started_play_is_answered_at_once_and_is_played_only_when_vobiz_says_so():
    """A 16 s play used to hold the API request for 16 s (it timed out while the caller heard
    it all); now the answer is at once, and ``played`` waits for Vobiz's playedStream."""
    socket = Socket()
    talk = controller(socket, lead_ms=60_000)  # no pacing: the test is about the states
    first = talk.start_play(b"\x00\x00" * 8000 * 16, 8000)  # 16 s
    assert first == {"play_id": "p1", "state": "playing", "ms": 16_000, "sent_ms": 0.0}
    second = talk.start_play(b"\x00\x00" * 800, 8000)
    assert second["state"] == "queued" and second["play_id"] == "p2"
    for _ in range(500):
        if "checkpoint" in socket.events():
            break
        await asyncio.sleep(0.01)
    sent = talk.play_state("p1")
    assert (sent["state"], sent["sent_ms"]) == ("playing", 16_000)  # its tail is queued at Vobiz
    assert socket.events()[:801] == ["playAudio"] * 800 + ["checkpoint"]
    assert socket.frames[800]["name"] == "p1-played"  # marked after its last frame, first
    talk.on_played("p1-played")
    assert (await wait_state(talk, "p1", "played"))["state"] == "played"
    await asyncio.sleep(0.2)
    assert talk.play_state("p2")["state"] == "playing"  # Vobiz has not confirmed it yet
    assert talk.play_state("p2")["sent_ms"] == 100


async def test_a_clear_cancels_the_play_in_progress_and_every_one_queued_behind_it():
    socket = Socket()
    talk = controller(socket, lead_ms=100)
    ids = [talk.start_play(b"\x00\x00" * 8000 * 5, 16000)["play_id"] for _ in range(4)]
    await asyncio.sleep(0.3)
    assert [talk.play_state(i)["state"] for i in ids] == ["playing"] + ["queued"] * 3
    await talk.clear()
    talk.on_cleared()
    for play_id in ids:
        await wait_state(talk, play_id, "cleared")
    states = [talk.play_state(i) for i in ids]
    assert 0 < states[0]["sent_ms"] < 1000
    assert [s["sent_ms"] for s in states[1:]] == [0.0] * 3  # the page's remaining pieces too
    assert "checkpoint" not in socket.events()  # nothing cut is marked as if it played


async def test_a_play_marked_but_cleared_before_vobiz_played_it_is_cleared():
    socket = Socket()
    talk = controller(socket, lead_ms=60_000)
    talk.start_play(b"\x00\x00" * 800, 8000)
    for _ in range(100):
        if "checkpoint" in socket.events():
            break
        await asyncio.sleep(0.01)
    await talk.clear()  # Vobiz drops what it had queued: the caller never heard the end
    assert (await wait_state(talk, "p1", "cleared"))["sent_ms"] == 100


async def test_plays_end_with_the_stream_and_an_ended_stream_takes_no_new_one():
    socket = Socket()
    talk = controller(socket, lead_ms=100)
    talk.start_play(b"\x00\x00" * 8000 * 5, 8000)
    talk.start_play(b"\x00\x00" * 8000, 8000)
    await asyncio.sleep(0.1)
    talk.close()
    assert (await wait_state(talk, "p1", "ended"))["sent_ms"] < 5000
    assert (await wait_state(talk, "p2", "ended"))["sent_ms"] == 0
    with pytest.raises(ConflictError, match="has ended"):
        talk.start_play(b"\x00\x00" * 80, 8000)


async def test_a_stream_keeps_its_newest_plays_only_and_an_unknown_one_is_not_found():
    from callstream.exceptions import NotFoundError
    from stream_server.talkback import PLAYS_KEPT

    socket = Socket()
    talk = controller(socket, lead_ms=60_000)
    for _ in range(PLAYS_KEPT + 10):
        talk.start_play(b"\x00\x00" * 160, 8000)
    with pytest.raises(NotFoundError, match="no play 'p1'"):
        talk.play_state("p1")
    assert talk.play_state(f"p{PLAYS_KEPT + 10}")["play_id"] == f"p{PLAYS_KEPT + 10}"
    with pytest.raises(NotFoundError):
        talk.play_state("p0")
    await talk.clear()


async def test_a_play_vobiz_never_confirms_ends_as_sent(monkeypatch):
    import stream_server.talkback as tb

    monkeypatch.setattr(tb, "PLAYED_GRACE_S", 0.2)
    socket = Socket()
    talk = controller(socket, lead_ms=60_000)
    talk.start_play(b"\x00\x00" * 800, 8000)
    assert (await wait_state(talk, "p1", "sent"))["sent_ms"] == 100


# -- a voice's sentence, sent as the voice makes it (issue 25) ---------------------------------


def tone(rate: int, seconds: float) -> bytes:
    import numpy as np

    n = int(rate * seconds)
    return (np.sin(np.arange(n) * 2 * np.pi * 440 / rate) * 8000).astype("<i2").tobytes()


async def test_a_sentence_goes_out_as_the_voice_makes_it_not_when_it_has_finished():
    """Polly streams a sentence over a few hundred ms: its first frame must not wait for the
    last (the reply's latency would hold all of the synthesis)."""
    socket = Socket()
    talk = controller(socket, lead_ms=10_000)
    rest = asyncio.Event()

    async def voice():
        yield tone(22050, 0.1), 22050  # espeak-ng's own rate, resampled as a stream
        await rest.wait()
        yield tone(22050, 0.1), 22050

    first = []
    saying = asyncio.create_task(
        talk.say(voice(), "agent-1", lambda: first.append(len(socket.frames)))
    )
    for _ in range(100):
        await asyncio.sleep(0.005)
        if socket.frames:
            break
    assert socket.events()[:1] == ["playAudio"], "the first frame went before the voice's end"
    assert first == [1], "told once, at the first frame"
    assert not saying.done()
    rest.set()
    heard = await saying
    assert heard is not None and not heard.done()
    events = socket.events()
    assert events[-1] == "checkpoint" and socket.frames[-1]["name"] == "agent-1"
    frames = events.count("playAudio")
    assert frames in (10, 11), "0.2 s at 8 kHz: 10 frames (the filter's tail may pad an 11th)"
    payloads = [base64.b64decode(f["media"]["payload"]) for f in socket.frames[:-1]]
    assert {len(p) for p in payloads} == {160}, "every frame whole 20 ms of μ-law at 8 kHz"
    talk.on_played("agent-1")
    assert await heard == "played"


async def test_a_voice_that_says_nothing_sends_nothing_and_marks_nothing():
    socket = Socket()
    talk = controller(socket)

    async def silent():
        return
        yield  # an async generator that makes nothing

    assert await talk.say(silent(), "agent-1") is None
    assert socket.frames == []


async def test_a_voice_that_changes_its_rate_mid_sentence_is_refused():
    from callstream.exceptions import InvalidAudioError

    socket = Socket()
    talk = controller(socket, lead_ms=10_000)

    async def fickle():
        yield tone(16000, 0.1), 16000
        yield tone(22050, 0.1), 22050

    with pytest.raises(InvalidAudioError, match="from 16000 to 22050"):
        await talk.say(fickle(), "agent-1")
    assert "checkpoint" not in socket.events(), "nothing marked as heard"
    assert not talk._lock.locked(), "the next play is not blocked"


async def test_a_clear_mid_sentence_stops_reading_the_voice():
    socket = Socket()
    talk = controller(socket, lead_ms=40)
    closed = asyncio.Event()

    async def long_voice():
        try:
            for _ in range(50):
                yield tone(16000, 0.1), 16000
        finally:
            closed.set()

    saying = asyncio.create_task(talk.say(long_voice(), "agent-1"))
    await asyncio.sleep(0.1)
    await talk.clear()
    assert await saying is None, "cut: nothing marked"
    await asyncio.wait_for(closed.wait(), 1.0)
    assert socket.events().count("playAudio") < 20 and "checkpoint" not in socket.events()


@pytest.mark.parametrize(
    ("piece", "rate", "error"),
    [
        (b"\x00\x01\x02", 16000, "3 bytes is not a whole number of 16-bit samples"),
        (b"\x00\x01" * 80, 12345, "sample rate 12345 is not one of"),
    ],
)
async def test_a_voice_making_broken_audio_is_refused_and_blocks_nothing(piece, rate, error):
    """A voice adapter's bug (half a sample, a rate no resampler takes) is a clear error for
    that sentence: nothing half-sent is marked as heard, and the next play goes on."""
    from callstream.exceptions import InvalidAudioError

    socket = Socket()
    talk = controller(socket, lead_ms=10_000)

    async def broken():
        yield piece, rate

    with pytest.raises(InvalidAudioError, match=error):
        await talk.say(broken(), "agent-1")
    assert "checkpoint" not in socket.events()
    assert await talk.play(b"\x00\x00" * 320, 8000) == 40, "the stream still plays"
