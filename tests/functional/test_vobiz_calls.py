"""Calls through the embedded stack as Vobiz makes them (the simulator plays Vobiz from
docs/protocol.md with wire code of its own): ending a stream from our side, and a real Vobiz's
settings kept."""

from __future__ import annotations

import base64
import os
import time
import uuid
import warnings

import numpy as np
import pytest

from local.demo import api
from local.stack import Stack
from local.vobiz_sim import SimCall


def wait(predicate, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_16_s_play_is_answered_at_once_and_followed_to_played(tmp_path):
    """It answered 504 after the hop gave up while the caller heard all 16 s (and a retry
    played it twice); now the answer is the play's id, and the id says when it was heard."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=1, log_file=tmp_path / "stack.log") as stack:
        call = stack.sim.add_call(SimCall(str(uuid.uuid4()), outbound=None))
        status, started = api(
            stack,
            "POST",
            f"/v1/calls/{call.call_uuid}/streams",
            {"audio_track": "inbound", "bidirectional": True},
        )
        assert status == 201, started
        stream_id = started["stream_id"]
        wait(lambda: api(stack, "GET", f"/v1/streams/{stream_id}")[1].get("task_address"))
        tone = (np.sin(np.arange(16 * 8000) / 8000 * 2 * np.pi * 440) * 8000).astype("<i2")
        body = {"audio_b64": base64.b64encode(tone.tobytes()).decode(), "sample_rate": 8000}
        status, play = api(stack, "POST", f"/v1/streams/{stream_id}/play", body)
        assert status == 202, play
        assert (play["play_id"], play["state"], play["ms"], play["sent_ms"]) == (
            "p1",
            "playing",
            16000,
            0,
        )
        states = []

        def heard() -> bool:
            states.append(api(stack, "GET", f"/v1/streams/{stream_id}/plays/p1")[1]["state"])
            return states[-1] == "played"

        wait(heard, seconds=60)
        assert set(states) == {"playing", "played"}  # playing until Vobiz says it was heard
        assert len(call.played) == 16 * 8000 * 2, "all 16 s reached the caller, once"
        status, missing = api(stack, "GET", f"/v1/streams/{stream_id}/plays/p2")
        assert (status, missing["error"]) == (404, "not_found"), missing
        status, bad = api(stack, "GET", f"/v1/streams/{stream_id}/plays/..%2Fx")
        assert status in (400, 404), bad
        api(stack, "DELETE", f"/v1/streams/{stream_id}")


@pytest.mark.slow
def test_the_app_ends_a_stream_after_a_goodbye_that_vobiz_played(tmp_path):
    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=1, log_file=tmp_path / "stack.log") as stack:
        call = stack.sim.add_call(SimCall(str(uuid.uuid4()), outbound=None))
        status, started = api(
            stack,
            "POST",
            f"/v1/calls/{call.call_uuid}/streams",
            {
                "audio_track": "inbound",
                "bidirectional": True,
                "content_type": "audio/x-l16;rate=16000",
            },
        )
        assert status == 201, started
        stream_id = started["stream_id"]
        wait(lambda: api(stack, "GET", f"/v1/streams/{stream_id}")[1].get("task_address"))
        tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype("<i2")
        status, ended = api(
            stack,
            "POST",
            f"/v1/streams/{stream_id}/end",
            {
                "goodbye_b64": base64.b64encode(tone.tobytes()).decode(),
                "sample_rate": 8000,
                "timeout_s": 10,
            },
        )
        assert status == 200 and ended["goodbye"] == "played", ended
        wait(call.done.is_set)
        assert call.stopped_by_app, "Vobiz received stop and closed the stream"
        assert call.play_mismatches == [], "every playAudio matched the stream's L16 16 kHz format"
        heard = np.frombuffer(bytes(call.played), dtype="<i2")
        assert len(heard) >= 16000 and np.abs(heard).max() > 4000, "the goodbye was heard whole"
        assert ("StopStream", 200) in call.callbacks  # Vobiz sends it for app-initiated stops
        wait(lambda: api(stack, "GET", f"/v1/streams/{stream_id}")[1].get("state") == "stopped")
        item = api(stack, "GET", f"/v1/streams/{stream_id}")[1]
        assert item["end_reason"] in ("stopped", "hangup"), item


def test_the_stack_keeps_a_real_vobizs_settings(tmp_path, monkeypatch):
    given = {
        "CALLSTREAM_VOBIZ_API_URL": "https://api.vobiz.example",
        "CALLSTREAM_VOBIZ_AUTH_ID": "MA_REAL",
        "CALLSTREAM_VOBIZ_AUTH_TOKEN": "real-token-from-the-console",
        "CALLSTREAM_PUBLIC_BASE_URL": "https://tunnel.example/api",
        "CALLSTREAM_WS_BASE_URL": "wss://tunnel.example",
    }
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    with Stack(log_file=tmp_path / "stack.log") as stack:
        assert stack.vobiz == "real Vobiz at https://api.vobiz.example"
        assert {k: os.environ[k] for k in given} == given, "not replaced by the simulator's"
        assert stack.endpoints()["websocket"] == "wss://tunnel.example/v1/audio/"
    assert {k: os.environ[k] for k in given} == given, "and the environment is as it was"
    monkeypatch.delenv("CALLSTREAM_VOBIZ_AUTH_TOKEN")  # not all three given: the simulator
    with Stack(log_file=tmp_path / "stack.log") as simulated:
        assert simulated.vobiz.startswith("the Vobiz simulator at http://127.0.0.1:")


@pytest.mark.slow
def test_the_make_up_walkthrough_works_when_pasted(tmp_path):
    import json
    import subprocess

    from local.up import walkthrough

    warnings.filterwarnings("ignore", "No application metrics to publish")
    with Stack(speed=1, log_file=tmp_path / "stack.log") as stack:
        call = str(uuid.uuid4())
        script = walkthrough(stack.endpoints(), call)
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=True
        )
    lines = [line for line in done.stdout.splitlines() if line]
    stream_id, listed, play_id, played, stopped = lines
    assert [s["stream_id"] for s in json.loads(listed)["streams"]] == [stream_id]
    assert play_id == "p1"
    assert (json.loads(played)["state"], json.loads(played)["sent_ms"]) == ("played", 1000), played
    assert json.loads(stopped)["stop_requested"] is True, stopped
    assert done.stderr == ""
