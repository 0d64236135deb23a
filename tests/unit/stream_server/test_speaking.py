"""A reply's voice: the next sentence is synthesised while the one before plays, within bounds."""

from __future__ import annotations

import asyncio

import pytest

from callstream.exceptions import ModelError
from stream_server import speaking
from stream_server.speaking import Sentence, Speaker


class Voice:
    """A cloud-like voice: each sentence takes ``synth_s`` to make, in two pieces."""

    def __init__(self, synth_s: float = 0.05, fail_on: str = "", raises: Exception | None = None):
        self.synth_s, self.fail_on, self.raises = synth_s, fail_on, raises
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def speak(self, text: str):
        self.started.append(text)
        try:
            if text == self.fail_on:
                raise self.raises or ModelError(f"cannot say {text!r}")
            await asyncio.sleep(self.synth_s / 2)
            yield b"\x00\x01" * 80, 16000
            await asyncio.sleep(self.synth_s / 2)
            yield b"\x00\x01" * 80, 16000
        except asyncio.CancelledError:
            self.cancelled.append(text)
            raise


class Player:
    """Plays a sentence for ``play_s`` (the lead's worth of sending), noting what it had."""

    def __init__(self, voice: Voice, play_s: float = 0.1):
        self.voice, self.play_s = voice, play_s
        self.played: list[tuple[str, int]] = []
        self.ready: list[bool] = []  # each sentence's audio already made when its turn came
        self.started_by_end: list[list[str]] = []  # the syntheses begun when each had played

    async def __call__(self, sentence: Sentence) -> None:
        self.ready.append(sentence.first_at is not None)
        pieces = [piece async for piece in sentence.speech()]
        await asyncio.sleep(self.play_s)
        self.played.append((sentence.text, len(pieces)))
        self.started_by_end.append(list(self.voice.started))


def clock() -> float:
    return asyncio.get_running_loop().time()


async def test_the_next_sentence_is_made_while_the_one_before_plays_and_no_more():
    """Without it, a cloud voice's synthesis time would fall silent between the sentences."""
    voice = Voice(synth_s=0.02)
    player = Player(voice, play_s=0.2)
    speaker = Speaker(voice, player, clock)
    for text in ("One.", "Two.", "Three.", "Four."):
        await speaker.say(text)
    await speaker.finish()
    await speaker.close()
    assert player.played == [("One.", 2), ("Two.", 2), ("Three.", 2), ("Four.", 2)]
    assert player.ready[1:] == [True, True, True], "each next sentence was made while one played"
    # while One played, only Two was made ahead; Three waited for One to finish (AHEAD = 2)
    assert player.started_by_end[0] == ["One.", "Two."]
    assert player.started_by_end[1] == ["One.", "Two.", "Three."]
    assert speaking.AHEAD == 2


async def test_a_failing_sentence_fails_the_reply_after_what_was_played():
    voice = Voice(fail_on="Two.")
    player = Player(voice)
    speaker = Speaker(voice, player, clock)
    await speaker.say("One.")
    await speaker.say("Two.")
    with pytest.raises(ModelError, match=r"cannot say 'Two\.'"):
        for text in ("Three.", "Four."):
            await speaker.say(text)
        await speaker.finish()
    await speaker.close()
    assert player.played == [("One.", 2)]


async def test_a_voice_that_raises_anything_is_a_model_error():
    voice = Voice(fail_on="One.", raises=ConnectionResetError("polly hung up"))
    speaker = Speaker(voice, Player(voice), clock)
    await speaker.say("One.")
    with pytest.raises(ModelError, match="the voice failed: polly hung up"):
        await speaker.finish()
    await speaker.close()


async def test_close_stops_the_synthesis_in_flight():
    """A barge-in: the sentence being made and the one playing end now."""
    voice = Voice(synth_s=5.0)
    player = Player(voice)
    speaker = Speaker(voice, player, clock)
    await speaker.say("One.")
    await speaker.say("Two.")
    await asyncio.sleep(0.05)
    await speaker.close()
    assert sorted(voice.cancelled) == ["One.", "Two."]
    assert player.played == []


async def test_a_stalled_voice_fails_instead_of_holding_the_call(monkeypatch):
    monkeypatch.setattr(speaking, "VOICE_STALL_S", 0.1)
    voice = Voice(synth_s=60.0)
    speaker = Speaker(voice, Player(voice), clock)
    await speaker.say("One.")
    with pytest.raises(ModelError, match=r"the voice sent nothing for 0\.1 s"):
        await speaker.finish()
    await speaker.close()
    assert voice.cancelled == ["One."], "its synthesis does not live on"


async def test_close_ends_the_player_even_when_a_play_swallows_its_cancel():
    """Some library between us and the wire may eat a cancel (3.11's wait_for did): the
    reply still ends, it does not wait forever for another sentence."""
    voice = Voice(synth_s=0.0)

    async def stubborn(sentence: Sentence) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return  # swallowed

    speaker = Speaker(voice, stubborn, clock)
    await speaker.say("One.")
    await asyncio.sleep(0.05)
    await asyncio.wait_for(speaker.close(), 2.0)
