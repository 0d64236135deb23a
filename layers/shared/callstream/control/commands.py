"""The control contract: the commands the control API relays to the task holding a stream.

One definition for both sides of the hop. The control Lambda validates a command with these
models before it calls the task; the task (``stream_server.internal_api``) parses the same
models and runs them with :func:`run`. Their defaults are therefore the same on both sides, and
so is the meaning of an error: the task answers ``{"error": code, "message": …}`` with the
status of the exception tree, and :func:`raise_for_answer` turns that back into the same
exception here.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callstream.exceptions import (
    CallstreamError,
    ConflictError,
    RequestError,
    UpstreamError,
)
from callstream.ports import Talk

Action = Literal["play", "checkpoint", "clear", "end"]
#: The largest base64 body of one command: ~4 minutes of 16 kHz PCM16.
MAX_AUDIO_B64 = 8 * 1024 * 1024
PlayRate = Literal[8000, 16000, 24000]
#: The id a task gives a play (``p`` and its number on the stream).
PLAY_ID = re.compile(r"p[0-9]{1,12}")


def _check_base64(value: str | None) -> str | None:
    if value is not None:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"not base64: {error}") from None
    return value


#: How long a checkpoint waits for Vobiz's ``playedStream`` unless told otherwise: the API's
#: default, and the task's (within API Gateway's 30 s integration timeout, with room to answer).
CHECKPOINT_TIMEOUT_S = 20.0


class PlayCommand(BaseModel):
    """``play``: PCM16 LE mono audio (base64) at ``sample_rate``.

    Answered at once with a ``play_id`` to follow (``GET .../plays/{play_id}``): a play takes
    as long as its audio, and no HTTP hop should wait that long (API Gateway gives up at 30 s).
    """

    model_config = ConfigDict(extra="forbid")
    audio_b64: str = Field(min_length=4, max_length=MAX_AUDIO_B64)
    sample_rate: PlayRate = 8000

    _b64 = field_validator("audio_b64")(_check_base64)

    def pcm(self) -> bytes:
        """The audio, decoded."""
        return base64.b64decode(self.audio_b64)


class CheckpointCommand(BaseModel):
    """``checkpoint``: a named mark; answers when Vobiz played up to it (or ``timeout``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")
    timeout_s: float = Field(CHECKPOINT_TIMEOUT_S, gt=0, le=25)


class ClearCommand(BaseModel):
    """``clear``: barge-in, drop what Vobiz has not played yet (empty body)."""

    model_config = ConfigDict(extra="forbid")


class EndCommand(BaseModel):
    """``end``: ``stop`` the stream, after an optional goodbye played to its end."""

    model_config = ConfigDict(extra="forbid")
    goodbye_b64: str | None = Field(None, min_length=4, max_length=MAX_AUDIO_B64)
    sample_rate: PlayRate = 8000
    timeout_s: float = Field(10, gt=0, le=20)

    _b64 = field_validator("goodbye_b64")(_check_base64)

    def goodbye(self) -> bytes | None:
        """The goodbye audio, decoded (None: stop at once)."""
        return None if self.goodbye_b64 is None else base64.b64decode(self.goodbye_b64)


Command = PlayCommand | CheckpointCommand | ClearCommand | EndCommand
COMMANDS: dict[str, type[Command]] = {
    "play": PlayCommand,
    "checkpoint": CheckpointCommand,
    "clear": ClearCommand,
    "end": EndCommand,
}


def parse_command(action: str, body: Any) -> Command:
    """Validate a command body.

    Raises:
        RequestError: an unknown action, or every field that is wrong, named.
    """
    model = COMMANDS.get(action)
    if model is None:
        raise RequestError(f"unknown action {action[:40]!r}: play, checkpoint, clear or end")
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as error:
        raise RequestError(f"{action}: {validation_problems(error)}") from None


def validation_problems(error: ValidationError) -> str:
    """A pydantic error as one line naming each field that is wrong."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
    )


async def run(talk: Talk, command: Command) -> dict[str, Any]:
    """Run one command on a stream's controller (the task's side); returns the answer body.

    Raises:
        ConflictError: the stream is not bidirectional.
        InvalidAudioError: audio the stream's format cannot carry.
    """
    if isinstance(command, PlayCommand):
        return talk.start_play(command.pcm(), command.sample_rate)
    if isinstance(command, CheckpointCommand):
        return {
            "name": command.name,
            "result": await talk.checkpoint(command.name, command.timeout_s),
        }
    if isinstance(command, EndCommand):
        result = await talk.end(command.goodbye(), command.sample_rate, command.timeout_s)
        return {"stopped": True, "goodbye": result}
    await talk.clear()
    return {"cleared": True}


def check_play_id(play_id: str) -> str:
    """A play id as the task makes them.

    Raises:
        RequestError: anything else (it is never sent on to the task).
    """
    if not PLAY_ID.fullmatch(play_id):
        raise RequestError(f"play_id {play_id[:40]!r} is not a play id (p and a number)")
    return play_id


def error_body(error: CallstreamError) -> dict[str, str]:
    """The answer body of a refused command (the status is the error's own)."""
    return {"error": error.code, "message": error.message}


def raise_for_answer(status: int, answer: dict[str, Any], stream_id: str, action: str) -> None:
    """Turn a task's refusal back into the exception the task raised (the caller's side).

    The task's 4xx are about the command or the stream, so they keep their meaning: a bad
    command is the caller's (400), a stream that is not bidirectional a conflict (409). A 404
    from the task means the stream left it (it ended, or moved with a reconnect): a conflict for
    the caller, whose stream the registry still showed live. Anything else is the task failing.

    Raises:
        RequestError: the task refused the command itself (400, 422).
        ConflictError: the stream is not live on its task, or cannot take the command.
        UpstreamError: the task failed.
    """
    if status < 300:
        return
    message = str(answer.get("message", ""))[:300]
    if status == 404:
        raise ConflictError(f"stream {stream_id} is no longer live on its task")
    if status == 409:
        raise ConflictError(message or "conflict")
    if status in (400, 422):
        raise RequestError(f"{action}: {message or 'refused'}")
    raise UpstreamError(f"the stream's task answered {status}: {message or answer.get('error')}")
