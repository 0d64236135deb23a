"""The control contract: one set of commands, defaults and error meanings for both sides."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from callstream.control import commands
from callstream.exceptions import (
    CallstreamError,
    ConflictError,
    InvalidAudioError,
    NotFoundError,
    RequestError,
    UpstreamError,
    http_status,
)

PCM = base64.b64encode(bytes(320)).decode()


def relayed(body: dict[str, object], action: str) -> commands.Command:
    """What the task parses of what the Lambda sends: the Lambda's model, dumped as JSON."""
    sent = commands.parse_command(action, body).model_dump_json()
    return commands.parse_command(action, json.loads(sent))


def test_defaults_are_the_same_on_both_sides_of_the_hop():
    checkpoint = relayed({"name": "turn-3"}, "checkpoint")
    assert isinstance(checkpoint, commands.CheckpointCommand) and checkpoint.timeout_s == 20
    end = relayed({}, "end")
    assert isinstance(end, commands.EndCommand)
    assert (end.goodbye(), end.sample_rate, end.timeout_s) == (None, 8000, 10)
    play = relayed({"audio_b64": PCM}, "play")
    assert isinstance(play, commands.PlayCommand) and play.pcm() == bytes(320)


@pytest.mark.parametrize(
    ("action", "body", "named"),
    [
        ("play", {"audio_b64": "!!!!"}, "audio_b64"),
        ("play", {"audio_b64": PCM, "sample_rate": "16000"}, "sample_rate"),  # a string
        ("play", {"audio_b64": PCM, "sample_rate": 44100}, "sample_rate"),
        ("play", {}, "audio_b64"),
        ("checkpoint", {"name": "a b"}, "name"),
        ("checkpoint", {"name": "x", "timeout_s": 600}, "timeout_s"),
        ("checkpoint", {"name": "x", "extra": 1}, "extra"),
        ("end", {"goodbye_b64": "not base64!"}, "goodbye_b64"),
        ("clear", ["not", "an", "object"], "body"),
        ("dance", {}, "dance"),
    ],
)
def test_a_bad_command_is_refused_with_the_field_named(action, body, named):
    with pytest.raises(RequestError) as refused:
        commands.parse_command(action, body)
    assert named in refused.value.message and http_status(refused.value) == 400


@pytest.mark.parametrize(
    ("raised_on_the_task", "seen_by_the_caller"),
    [
        (RequestError("play: audio_b64: not base64"), RequestError),
        (InvalidAudioError("playAudio cannot carry mulaw at 16000 Hz"), RequestError),
        (NotFoundError("stream s-1 is not live on this task"), ConflictError),
        (ConflictError("stream s-1 is not bidirectional"), ConflictError),
        (CallstreamError("the task broke"), UpstreamError),
    ],
)
def test_an_error_on_the_task_means_the_same_to_the_caller(raised_on_the_task, seen_by_the_caller):
    status, body = http_status(raised_on_the_task), commands.error_body(raised_on_the_task)
    answer = json.loads(json.dumps(body))  # over the wire
    with pytest.raises(seen_by_the_caller) as seen:
        commands.raise_for_answer(status, answer, "s-1", "play")
    assert type(seen.value) is seen_by_the_caller
    if seen_by_the_caller is not ConflictError or status == 409:
        assert raised_on_the_task.message[:40] in seen.value.message


def test_a_success_is_not_an_error():
    assert commands.raise_for_answer(200, {"played_ms": 20}, "s-1", "play") is None


class Recorder:
    """A talk-back controller that notes what it was asked (the task side of ``run``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    async def play(self, pcm: bytes, sample_rate: int) -> float:
        raise AssertionError("a play command is started, never awaited to its end")

    def start_play(self, pcm: bytes, sample_rate: int) -> dict[str, object]:
        self.calls.append(("play", len(pcm), sample_rate))
        return {"play_id": "p1", "state": "playing", "ms": len(pcm) / 2 / sample_rate * 1000}

    def play_state(self, play_id: str) -> dict[str, object]:
        raise AssertionError("not a command")

    async def checkpoint(self, name: str, timeout_s: float) -> str:
        self.calls.append(("checkpoint", name, timeout_s))
        return "played"

    async def clear(self) -> None:
        self.calls.append(("clear",))

    async def end(self, goodbye: bytes | None, sample_rate: int, timeout_s: float) -> str:
        self.calls.append(("end", goodbye, sample_rate, timeout_s))
        return "none"


def test_run_hands_each_command_to_the_controller_with_its_defaults():
    talk = Recorder()
    answers = [
        asyncio.run(commands.run(talk, relayed(body, action)))
        for action, body in (
            ("play", {"audio_b64": PCM, "sample_rate": 16000}),
            ("checkpoint", {"name": "turn-1"}),
            ("clear", {}),
            ("end", {}),
        )
    ]
    assert talk.calls == [
        ("play", 320, 16000),
        ("checkpoint", "turn-1", 20.0),
        ("clear",),
        ("end", None, 8000, 10.0),
    ]
    assert answers == [
        {"play_id": "p1", "state": "playing", "ms": 10.0},
        {"name": "turn-1", "result": "played"},
        {"cleared": True},
        {"stopped": True, "goodbye": "none"},
    ]
