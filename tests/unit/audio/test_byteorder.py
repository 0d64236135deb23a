"""Inbound L16 byte order, detected per track (issue 22): Vobiz documents big-endian, Vobiz's
own reference code sends little-endian. The wire bytes here are made with numpy, not with the
product's codecs, and the shared call's audio is what is sent."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import soxr

from callstream.audio.assembler import Assembler
from callstream.audio.byteorder import HOLD_FRAMES as BYTE_ORDER_HOLD
from callstream.audio.byteorder import ByteOrderDetector
from callstream.audio.events import ByteOrderFound
from callstream.audio.events import records as records_of
from callstream.audio.protocol import parse_message
from callstream.audio.records import AudioRecord, EventRecord
from callstream.vocabulary import AudioLimits

AUDIO = Path(__file__).resolve().parents[3] / "samples"


def speech(rate: int, seconds: float = 9.0) -> np.ndarray:
    """The shared support call's caller, at ``rate``: 7 s of silence (exact zeros), then speech."""
    import wave

    with wave.open(str(AUDIO / f"support_call_{min(rate, 16000)}_inbound.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    if rate == 24000:
        pcm = np.asarray(soxr.resample(pcm, 16000, 24000), dtype="<i2")
    return pcm[: int(rate * seconds)]


def wire(samples: np.ndarray, order: str) -> bytes:
    return samples.astype(">i2" if order == "big" else "<i2").tobytes()


def stream(samples: np.ndarray, rate: int, order: str, setting: str = "auto"):
    """Send ``samples`` as 20 ms L16 frames in ``order``; return (PCM out, events, records)."""
    assembler = Assembler(limits=AudioLimits(l16_byte_order=setting), call_uuid="c-1")
    start = {
        "event": "start",
        "start": {
            "streamId": "s-1",
            "callId": "c-1",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": rate},
        },
    }
    assembler.receive(parse_message(json.dumps(start)))
    data = wire(samples, order)
    frame = rate // 50 * 2
    for i, offset in enumerate(range(0, len(data), frame)):
        payload = base64.b64encode(data[offset : offset + frame]).decode()
        message = {
            "event": "media",
            "media": {"track": "inbound", "chunk": i + 1, "payload": payload},
        }
        assembler.receive(parse_message(json.dumps(message)), i * 0.02)
    assembler.close("close", 99.0)
    happened = assembler.events_ready()
    out = records_of(happened)
    pcm = b"".join(r.payload for r in out if isinstance(r, AudioRecord))
    return pcm, happened, out


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
@pytest.mark.parametrize("order", ["big", "little"])
def test_each_order_is_found_from_speech_after_silence_and_nothing_is_lost(rate, order):
    samples = speech(rate)
    assert np.abs(samples[: rate // 2]).max() <= 2, "the call begins with silence"
    pcm, events, out = stream(samples, rate, order)
    assert pcm == samples.astype("<i2").tobytes(), "every sample, in order, the right way round"
    (found,) = [e for e in events if isinstance(e, ByteOrderFound)]
    assert found.order == order and found.evidence >= 4 and not found.provisional
    names = [r.name for r in out if isinstance(r, EventRecord)]
    assert names[0] == "start" and "byte_order" in names
    (record,) = [r for r in out if isinstance(r, EventRecord) and r.name == "byte_order"]
    assert record.data["order"] == order and record.data["forced"] is False


@pytest.mark.parametrize("order", ["big", "little"])
@pytest.mark.parametrize("offset", [3000, -9000])
def test_a_dc_offset_does_not_mislead_it(order, offset):
    rng = np.random.default_rng(3)
    hiss = rng.normal(0, 3, len(speech(8000))).astype(np.int32)  # a line is never quite silent
    samples = np.clip(speech(8000) + hiss + offset, -32768, 32767).astype(np.int16)
    pcm, events, _ = stream(samples, 8000, order)
    assert pcm == samples.astype("<i2").tobytes()
    assert [e.order for e in events if isinstance(e, ByteOrderFound)] == [order]


@pytest.mark.parametrize("order", ["big", "little"])
def test_a_faint_noise_floor_before_speech_is_enough(order):
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 4, 8000).astype(np.int16)  # one second of a line's hiss, ±4 steps
    samples = np.concatenate([noise, speech(8000)[8000:]])
    pcm, events, _ = stream(samples, 8000, order)
    assert pcm == samples.astype("<i2").tobytes()
    found = [e for e in events if isinstance(e, ByteOrderFound)]
    assert [e.order for e in found] == [order]


def test_a_constant_level_tells_nothing_and_goes_out_at_once_as_documented():
    level = np.full(8000, 1234, dtype=np.int16)  # a DC level reads as a constant either way
    samples = np.concatenate([level, speech(8000)[8000:]])
    pcm, events, _ = stream(samples, 8000, "little")
    got = np.frombuffer(pcm, "<i2")
    assert len(got) == len(samples), "nothing lost"
    assert (got[:8000] == np.int16(1234).byteswap()).all(), "the level, read as documented"
    assert (got[8000:] == samples[8000:]).all(), "right from the speech on"
    assert [e.order for e in events if isinstance(e, ByteOrderFound)] == ["little"]


def test_audio_rough_both_ways_is_held_half_a_second_at_most_then_goes_out_as_documented():
    rng = np.random.default_rng(5)
    roar = rng.integers(-32768, 32767, 8000).astype(np.int16)  # white at full scale: no order
    samples = np.concatenate([roar, speech(8000)[8000:]])
    assembler_hold_s = BYTE_ORDER_HOLD * 0.02
    assert assembler_hold_s <= 0.5
    pcm, events, _ = stream(samples, 8000, "little")
    got = np.frombuffer(pcm, "<i2")
    assert len(got) == len(samples), "nothing lost"
    found = [e for e in events if isinstance(e, ByteOrderFound)]
    assert found[0].provisional and found[0].order == "big", "released as documented, said once"
    assert [e.order for e in found[1:]] == ["little"]
    assert (got[8000:] == samples[8000:]).all(), "right from the speech on"


@pytest.mark.parametrize("order", ["big", "little"])
def test_the_setting_forces_an_order(order):
    samples = speech(16000)
    pcm, events, _ = stream(samples, 16000, order, setting=order)
    assert pcm == samples.astype("<i2").tobytes()
    (found,) = [e for e in events if isinstance(e, ByteOrderFound)]
    assert found.order == order and found.evidence == 0
    wrong, _, _ = stream(samples, 16000, order, setting="little" if order == "big" else "big")
    assert wrong != pcm, "forcing the wrong order is obeyed (and is static)"


def test_the_detector_alone():
    samples = speech(8000)[56000:64000]  # the first second of speech
    detector = ByteOrderDetector()
    for i in range(0, len(samples), 160):
        if detector.observe(wire(samples[i : i + 160], "little")) is not None:
            break
    assert detector.decided == "little" and i < 160 * 20
    silent = ByteOrderDetector()
    for _ in range(500):
        assert silent.observe(bytes(320)) is None


def test_a_track_held_for_its_byte_order_keeps_its_place_beside_one_that_was_not():
    """Holding a track's first frames must not start it late: it lines up where it arrived
    (found in a reconnected call: the held track slid 60 ms behind the other)."""
    rate = 8000
    talk = speech(rate)[58400:66400]  # loud speech from the first frame: held until decided
    assembler = Assembler(limits=AudioLimits(), call_uuid="c-1")
    start = {
        "event": "start",
        "start": {
            "streamId": "s-1",
            "callId": "c-1",
            "tracks": ["inbound", "outbound"],
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": rate},
        },
    }
    assembler.receive(parse_message(json.dumps(start)))
    silence = bytes(320)
    data = wire(talk, "little")
    for i, offset in enumerate(range(0, len(data), 320)):
        for track, payload in (("inbound", data[offset : offset + 320]), ("outbound", silence)):
            body = {"track": track, "chunk": i + 1, "payload": base64.b64encode(payload).decode()}
            assembler.receive(
                parse_message(json.dumps({"event": "media", "media": body})), i * 0.02
            )
    assembler.close("close", 9.0)
    audio = [r for r in records_of(assembler.events_ready()) if isinstance(r, AudioRecord)]
    first = {t: min(r.start_sample for r in audio if r.track == t) for t in ("inbound", "outbound")}
    assert first == {"inbound": 0, "outbound": 0}
    inbound = b"".join(r.payload for r in audio if r.track == "inbound")
    assert inbound == talk.astype("<i2").tobytes()


# -- the hold on its own (byteorder.ByteOrderHold) --------------------------------------------


def moving(order: str, seed: int) -> bytes:
    """One 20 ms 8 kHz frame of a smooth tone (a moving frame) in ``order``."""
    t = np.arange(160) + seed * 160
    return wire((3000 * np.sin(2 * np.pi * 300 * t / 8000)).astype(np.int16), order)


def test_the_hold_lets_a_silent_frame_through_at_once_in_the_documented_order() -> None:
    from callstream.audio.byteorder import DOCUMENTED, ByteOrderHold

    hold: ByteOrderHold[str] = ByteOrderHold()
    release = hold.take(bytes(320), "f0", 1.0)
    assert list(release.frames) == [("f0", 1.0)] and release.order == DOCUMENTED
    assert release.found is None and not release.provisional and hold.held_since is None


@pytest.mark.parametrize("order", ["big", "little"])
def test_the_hold_keeps_moving_frames_in_order_until_the_audio_decides(order: str) -> None:
    from callstream.audio.byteorder import ByteOrderHold

    hold: ByteOrderHold[int] = ByteOrderHold()
    released = []
    for i in range(10):
        release = hold.take(moving(order, i), i, float(i))
        if not release.frames:
            assert hold.held_since == 0.0, "held since the first moving frame"
            continue
        released.append(release)
    first = released[0]
    assert first.order == order and first.found is not None and first.found >= 4
    assert [f for f, _ in first.frames] == list(range(len(first.frames))), "in arrival order"
    assert hold.decided == order and hold.held_since is None


def test_a_full_hold_goes_out_documented_said_once_and_detection_starts_again() -> None:
    from callstream.audio.byteorder import DOCUMENTED, ByteOrderHold

    noise = np.random.default_rng(3).integers(-30000, 30000, 160).astype(np.int16)
    hold: ByteOrderHold[int] = ByteOrderHold(limit=3)
    outs = [hold.take(wire(noise, "big"), i, float(i)) for i in range(6)]
    full = [o for o in outs if o.frames]
    assert [[f for f, _ in o.frames] for o in full] == [[0, 1, 2], [3, 4, 5]], "nothing lost"
    assert all(o.order == DOCUMENTED and o.found is None for o in full)
    assert [o.provisional for o in full] == [True, False], "provisional is said once"
    assert hold.decided is None


def test_a_forced_order_is_decided_from_the_start() -> None:
    from callstream.audio.byteorder import ByteOrderHold

    hold: ByteOrderHold[int] = ByteOrderHold("little")
    assert hold.decided == "little" and hold.detector.forced
