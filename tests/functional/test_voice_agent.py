"""The voice agent in a whole conversation on the embedded stack: the simulator's caller takes
turns with the ``assistant`` (live PocketSphinx, the scripted model, espeak-ng), talks over one
reply, and says goodbye; what it heard and what the bus carries are checked."""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from typing import Any

import pytest

from local.demo import talk_on
from local.stack import Stack
from local.vobiz_caller import Conversation
from local.vobiz_sim import SimCall
from stream_server.scripted_model import DEFAULT_SCRIPT, load_script


def wait(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_conversation_with_a_barge_in_and_a_goodbye_that_plays_before_the_stop(tmp_path):
    warnings.filterwarnings("ignore", "No application metrics to publish")
    script = load_script(DEFAULT_SCRIPT)
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def keep(event: dict[str, Any]) -> None:
        with lock:
            events.append(event)

    with Stack(speed=1, live="local", log_file=tmp_path / "stack.log") as stack:
        assert stack.poller is not None
        stack.poller.listeners.append(keep)
        conversation = Conversation.from_sample(8000)
        call = SimCall(str(uuid.uuid4()), outbound=None, conversation=conversation)
        talk_on(stack, call, agent="assistant")
        wait(call.done.is_set, 150)

        def session(name: str) -> list[dict[str, Any]]:
            with lock:
                return [
                    e["detail"]
                    for e in events
                    if e["detail-type"] == "Session Event" and e["detail"]["name"] == name
                ]

        wait(lambda: any(d["data"]["action"] == "stop" for d in session("agent")), 30)
        wait(lambda: bool(session("stop") or session("close")), 30)

    turns = conversation.turns
    assert [t.text for t in turns] == [text for text, _ in conversation.utterances]
    assert all(t.latency_s is not None for t in turns), "every turn had a reply"
    barged = turns[conversation.interrupt or 0]
    assert barged.over_reply and barged.cleared_at is not None, "talking over it cleared it"
    assert call.stopped_by_app, "the agent ended the call after its goodbye"

    notes = [d["data"] for d in session("agent")]
    replies = [n for n in notes if n["action"] == "turn"]
    assert replies[0]["reply"] == "Hello, thank you for calling. How can I help you today?"
    assert replies[-1]["reply"] == next(i.reply for i in script.intents if i.name == "goodbye")
    assert [n["action"] for n in notes].count("barge_in") == 1
    assert {"action": "tool", "name": "end_call"} in notes
    # the reply talked over keeps only what the caller heard of it: its first sentences or none
    barge = next(i for i, n in enumerate(notes) if n["action"] == "barge_in")
    cut = next(n for n in notes[barge:] if n["action"] == "turn")
    whole = [i.reply for i in script.intents] + [script.fallback]
    assert cut["reply"] not in whole, "all of it was kept, though the caller cut it short"
    assert any(reply.startswith(cut["reply"]) for reply in whole)
    # the goodbye's checkpoint was played before the stream stopped
    played = session("played_stream")
    last_mark = max(played, key=lambda d: d["seq"])
    stop = session("stop") or session("close")
    assert stop and last_mark["seq"] < stop[0]["seq"]
