"""`make demo`'s code path end to end: the embedded stack, the Vobiz simulator, the public API.

Each run goes through moto (resources from template.yaml), the HTTP gateway, the real handlers,
the real stream server and the real consumers, at 16 times real time.
"""

from __future__ import annotations

import json
import os
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from callstream.audio import codecs
from local import demo
from local.vobiz_frames import read_wav

AUDIO = Path(__file__).resolve().parents[2] / "samples"
SCRIPT = json.loads((AUDIO / "support_call.json").read_text())["utterances"]


def run(tmp_path: Path, *options: str) -> tuple[dict, Path]:
    threads = threading.active_count()
    env = dict(os.environ)
    assert demo.main(["--speed", "16", "--out", str(tmp_path), "--timeout", "240", *options]) == 0
    assert dict(os.environ) == env, "the stack restores the environment"
    assert threading.active_count() <= threads + 2, "the stack stops what it started"
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary) >= {"call_uuid", "stream_id", "recording", "utterances"}
    assert summary["call_uuid"] == folder.name and summary["recording"] == "recording.wav"
    for u in summary["utterances"]:
        assert set(u) == {"track", "start_s", "end_s", "text", "sentiment"}
    return summary, folder


def recording(folder: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(folder / "recording.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(
            -1, w.getnchannels()
        ), w.getframerate()


def bus_events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(("codec", "rate"), [("mulaw", 8000), ("l16-16k", 16000)])
def test_a_call_through_the_embedded_stack(tmp_path, codec, rate):
    inbound, outbound = (
        AUDIO / f"support_call_{rate}_inbound.wav",
        AUDIO / f"support_call_{rate}_outbound.wav",
    )
    summary, folder = run(
        tmp_path, "--codec", codec, "--inbound", str(inbound), "--outbound", str(outbound)
    )
    assert [u["track"] for u in summary["utterances"]] == [s["track"] for s in SCRIPT]
    assert all(u["text"] for u in summary["utterances"])
    samples, found_rate = recording(folder)
    assert found_rate == rate and samples.shape[1] == 2
    for column, path in enumerate((inbound, outbound)):
        source, _ = read_wav(path)
        if codec == "mulaw":
            source = codecs.ulaw_decode(codecs.ulaw_encode(source))
        expected = np.frombuffer(source, dtype="<i2")
        assert np.array_equal(samples[: len(expected), column], expected)
    kinds = [e.get("detail-type") for e in bus_events(folder) if e["source"] == "bus"]
    assert "Stream Started" in kinds  # signed status callbacks accepted
    assert kinds.count("Call Ended") == 1  # Vobiz's signed Hangup: the authoritative end
    assert "Call Completed" in kinds
    session = [e for e in bus_events(folder) if e["source"] == "session"]
    assert session[-1]["name"] == "close"  # no stop event: the socket close ended the stream


@pytest.mark.slow
@pytest.mark.contention
def test_prompt_agent_barge_in_and_dropped_frames(tmp_path, capsys):
    summary, folder = run(tmp_path, "--agent", "prompt", "--drop", "200-209")
    with wave.open(str(folder / "played.wav")) as w:
        played = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        played_s = len(played) / w.getframerate()
    assert np.abs(played).max() > 1000, "the caller heard the prompt"
    (talk,) = [line for line in capsys.readouterr().out.splitlines() if "talk time:" in line]
    # its track is not streamed (inbound only): what it played, not a talk time of 0.0 s
    assert f"agent played {played_s:.1f} s (its track not streamed)" in talk, talk
    session = [e for e in bus_events(folder) if e["source"] == "session"]
    actions = [e["data"]["action"] for e in session if e["name"] == "agent"]
    assert actions[0] == "play" and "clear" in actions, (
        "greeting, then barge-in when the caller spoke"
    )
    assert any(e["name"] == "cleared_audio" for e in session)
    gaps = [e["data"] for e in session if e["name"] == "gap"]
    # a talking agent means a bidirectional stream: Vobiz allows the inbound track only
    assert sorted((g["track"], g["first_frame"], g["frames"]) for g in gaps) == [
        ("inbound", 200, 10),
    ]
    samples, _ = recording(folder)
    source, _ = read_wav(AUDIO / "support_call_8000_inbound.wav")
    frames = -(-len(source) // 320)
    assert len(samples) == frames * 160, "the timeline keeps its length across the gap"
    assert not samples[199 * 160 : 209 * 160].any()
    callers = [s for s in SCRIPT if s["track"] == "inbound"]
    assert summary["gaps"] and len(summary["utterances"]) >= len(callers)


@pytest.mark.slow
@pytest.mark.contention
def test_a_dropped_socket_reconnects_and_the_call_goes_on_in_one_recording(tmp_path, capsys):
    summary, folder = run(tmp_path, "--drop-at", "600")
    assert len(summary["vobiz_stream_ids"]) == 2, "Vobiz reconnected once, with a new streamId"
    (said,) = [line for line in capsys.readouterr().out.splitlines() if "reconnected" in line]
    first, again = summary["vobiz_stream_ids"]
    assert f"as stream {again[:8]}" in said and first[:8] not in said, "the new stream named"
    reconnect = [g for g in summary["gaps"] if g.get("reason") == "reconnect"]
    assert {g["track"] for g in reconnect} == {"inbound", "outbound"}
    # The simulator's Vobiz comes back 200 ms later in the call (10 frames lost): the gap is
    # measured on Vobiz's timestamps, exactly, however late any loop was on a busy host.
    assert [(g["start_sample"], g["samples"], g["measured_by"]) for g in reconnect] == [
        (600 * 160, 10 * 160, "timestamps")
    ] * 2
    session = [e for e in bus_events(folder) if e["source"] == "session"]
    starts = [e for e in session if e["name"] == "start"]
    assert [s["data"].get("generation") for s in starts] == [None, 2]
    assert {e["stream_id"] for e in session} == {summary["stream_id"]}, "one call stream"
    samples, _ = recording(folder)
    source, _ = read_wav(AUDIO / "support_call_8000_inbound.wav")
    assert len(samples) == -(-len(source) // 320) * 160, "the call's whole length, in place"
    texts = [u["text"] for u in summary["utterances"] if u["start_s"] > 13]
    assert texts, "utterances after the reconnect were transcribed"


def test_a_wav_the_simulator_cannot_play_is_named_before_the_stack_starts(tmp_path, capsys):
    """A stereo or 8-bit WAV, a missing one or one that is no WAV: one line saying what is wrong
    and what is needed, exit status 2, and nothing started (it was a KeyError after the start)."""
    import wave

    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(bytes(3200))
    narrow = tmp_path / "narrow.wav"
    with wave.open(str(narrow), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000)
        w.writeframes(bytes(1600))
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    for path, said in (
        (stereo, "2 channel(s) of 16-bit"),
        (narrow, "1 channel(s) of 8-bit"),
        (tmp_path / "missing.wav", "no such file"),
        (text, "not a PCM WAV"),
    ):
        assert demo.main(["--inbound", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert said in err and "mono 16-bit PCM" in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "out").exists(), "nothing started"


def test_a_simulator_error_is_printed_and_the_demo_fails_at_once(tmp_path, capsys, monkeypatch):
    """It waited for the timeout and then wrote nothing about why (or a KeyError)."""
    from local.vobiz_sim import VobizSimulator

    def broken(self, spec, call, stream_id):
        raise RuntimeError("the start message could not be made")

    monkeypatch.setattr(VobizSimulator, "_start_message", broken)
    assert demo.main(["--speed", "16", "--out", str(tmp_path), "--timeout", "120"]) == 1
    err = capsys.readouterr().err
    assert "the simulator reports: RuntimeError: the start message could not be made" in err, err
    assert "1 call(s) ended early" in err and "timed out" not in err, err


def test_an_alert_is_printed_after_the_line_that_raised_it_whatever_order_the_bus_brings():
    order = demo.InOrder()
    alert = {"stream_id": "s", "utterance": "inbound#000000002"}
    assert order.alert(alert, "alert") == []  # published first, held
    assert order.line({"stream_id": "s", "utterance": "inbound#000000001"}, "one") == ["one"]
    assert order.line(dict(alert), "two") == ["two", "alert"]
    assert order.alert({"stream_id": "s", "utterance": "inbound#000000001"}, "late") == ["late"]
    assert order.alert({"stream_id": "s", "utterance": "never"}, "orphan") == []
    assert order.left() == ["orphan"] and order.left() == []  # printed at the end, not lost
