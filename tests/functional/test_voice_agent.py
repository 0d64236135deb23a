"""The voice agent in a whole conversation on the embedded stack: the simulator's caller takes
turns with the ``assistant`` (live PocketSphinx, the scripted model, espeak-ng), talks over one
reply, and says goodbye; what it heard and what the bus carries are checked."""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.demo import talk_on
from local.stack import Stack
from local.vobiz_caller import Conversation
from local.vobiz_sim import SimCall
from stream_server.scripted_model import DEFAULT_SCRIPT, load_script

SCRIPT = load_script(DEFAULT_SCRIPT)
GREETING = "Hello, thank you for calling. How can I help you today?"


def wait(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@dataclass
class Talked:
    """A conversation and what the bus said of it."""

    conversation: Conversation
    call: SimCall
    events: list[dict[str, Any]]

    def session(self, name: str) -> list[dict[str, Any]]:
        return [
            e["detail"]
            for e in list(self.events)
            if e["detail-type"] == "Session Event" and e["detail"]["name"] == name
        ]

    @property
    def notes(self) -> list[dict[str, Any]]:
        return [d["data"] for d in self.session("agent")]


def converse(log: Path) -> Talked:
    """One conversation to its end, and the bus's events up to the stream's own end."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def keep(event: dict[str, Any]) -> None:
        with lock:
            events.append(event)

    with Stack(speed=1, live="local", log_file=log) as stack:
        assert stack.poller is not None
        stack.poller.listeners.append(keep)
        conversation = Conversation.from_sample(8000)
        call = SimCall(str(uuid.uuid4()), outbound=None, conversation=conversation)
        talk_on(stack, call, agent="assistant")
        wait(call.done.is_set, 150)
        talked = Talked(conversation, call, events)
        wait(lambda: bool(talked.session("stop") or talked.session("close")), 30)
        time.sleep(1.0)  # the last turn's note follows the stream's end on the bus
    return talked


def assert_the_mechanics_hold(talked: Talked) -> None:
    """What holds whatever the recogniser made of the caller's words."""
    turns = talked.conversation.turns
    assert [t.text for t in turns] == [text for text, _ in talked.conversation.utterances]
    assert all(t.latency_s is not None for t in turns), "every turn had a reply"
    barged = turns[talked.conversation.interrupt or 0]
    assert barged.over_reply and barged.cleared_at is not None, "talking over it cleared it"
    notes = talked.notes
    assert next(n for n in notes if n["action"] == "turn")["reply"] == GREETING
    assert [n["action"] for n in notes].count("barge_in") >= 1
    # the reply talked over keeps only what the caller heard of it: its first sentences or none
    barge = next(i for i, n in enumerate(notes) if n["action"] == "barge_in")
    cut = next(n for n in notes[barge:] if n["action"] == "turn")
    whole = [i.reply for i in SCRIPT.intents] + [SCRIPT.fallback]
    assert cut["reply"] not in whole, "all of it was kept, though the caller cut it short"
    assert any(reply.startswith(cut["reply"]) for reply in whole)


@pytest.mark.slow
def test_a_conversation_with_a_barge_in_and_a_goodbye_that_plays_before_the_stop(tmp_path):
    talked = converse(tmp_path / "stack.log")
    assert_the_mechanics_hold(talked)
    assert talked.call.stopped_by_app, "the agent ended the call after its goodbye"
    notes = talked.notes
    replies = [n for n in notes if n["action"] == "turn"]
    assert replies[-1]["reply"] == next(i.reply for i in SCRIPT.intents if i.name == "goodbye")
    assert [n["action"] for n in notes].count("barge_in") == 1
    assert {"action": "tool", "name": "end_call"} in notes
    # the goodbye's checkpoint was played before the stream stopped
    last_mark = max(talked.session("played_stream"), key=lambda d: d["seq"])
    stop = talked.session("stop") or talked.session("close")
    assert stop and last_mark["seq"] < stop[0]["seq"]


@pytest.mark.slow
@pytest.mark.contention
def test_on_a_busy_host_every_turn_is_answered_and_talking_over_a_reply_clears_it(tmp_path, host):
    """Loaded, PocketSphinx (in a worker beside the spinning cores) may mishear a line, so what
    the agent answers may differ; the turn-taking, the barge-in and the history must not."""
    assert_the_mechanics_hold(converse(tmp_path / "stack.log"))
