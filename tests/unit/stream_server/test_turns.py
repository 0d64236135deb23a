"""Turn-taking and barge-in, driven frame by frame in the caller's media time."""

from __future__ import annotations

from stream_server.turns import BargeIn, Cancel, Reply, Turns, TurnSettings


class Caller:
    """Feeds a Turns the caller's frames, 20 ms each, and collects its actions."""

    def __init__(self, turns: Turns) -> None:
        self.turns, self.at, self.actions = turns, 0.0, []

    def voice(self, ms: float) -> None:
        self._frames(ms, True)

    def quiet(self, ms: float) -> None:
        self._frames(ms, False)

    def _frames(self, ms: float, voiced: bool) -> None:
        for _ in range(int(ms // 20)):
            self.at += 20
            self.turns.frame(self.at, voiced)
            self.actions += self.turns.actions_ready()

    def says(
        self, line: str, text: str, settles: tuple[str, ...] = (), end_ms: float | None = None
    ) -> None:
        self.turns.heard(line, text, settles, end_ms)
        self.actions += self.turns.actions_ready()


def agent_speaking(settings: TurnSettings) -> tuple[Turns, Caller]:
    """The caller said "hi" (400 ms) and the agent's reply is sounding, from 700 ms."""
    turns = Turns(settings)
    caller = Caller(turns)
    caller.voice(400)
    caller.says("a", "hi")
    caller.quiet(300)
    turns.spoke()
    caller.actions.clear()
    return turns, caller


def test_a_turn_ends_at_quiet_after_words_and_the_reply_hears_every_line():
    caller = Caller(Turns())
    caller.voice(600)
    caller.says("a", "i would like")
    caller.voice(400)
    caller.says("a", "i would like to book")
    caller.quiet(280)
    assert caller.actions == [], "280 ms of quiet is a pause, not the end"
    caller.says("a", "i would like to book a room", ())
    caller.quiet(40)
    assert caller.actions == [Reply("i would like to book a room", speech_end_ms=1000.0)]


def test_quiet_without_a_word_is_no_turn_and_the_vads_end_ends_one_at_once():
    turns = Turns()
    caller = Caller(turns)
    caller.voice(300)
    caller.quiet(1000)
    assert caller.actions == [], "noise with no word recognised"
    caller.voice(200)
    caller.says("b", "hello")
    turns.utterance_ended()
    assert turns.actions_ready() == [Reply("hello", speech_end_ms=1500.0)]


def test_a_continued_word_cancels_a_reply_that_made_no_sound_and_keeps_the_words():
    turns = Turns()
    caller = Caller(turns)
    caller.voice(500)
    caller.says("a", "i want to")
    caller.quiet(300)
    assert caller.actions == [Reply("i want to", 500.0)] and turns.phase == "thinking"
    caller.voice(20)
    assert caller.actions[-1] == Cancel() and turns.phase == "listening"
    caller.voice(400)
    caller.says("b", "cancel my order")
    caller.quiet(300)
    assert caller.actions[-1] == Reply("i want to cancel my order", 1220.0)


def test_voice_over_the_agent_interrupts_once_it_lasts_and_the_turn_goes_on():
    turns, caller = agent_speaking(TurnSettings(barge_in_ms=180))
    caller.voice(160)
    assert caller.actions == [], "160 ms is under the barge-in's minimum"
    caller.voice(20)
    assert caller.actions == [BargeIn(onset_ms=700.0)] and turns.phase == "listening"
    caller.says("b", "no wait stop")
    caller.quiet(300)
    assert caller.actions[-1] == Reply("no wait stop", 880.0)


def test_a_cough_and_a_backchannel_do_not_interrupt_and_are_forgotten():
    turns, caller = agent_speaking(TurnSettings(barge_in_ms=180, barge_in_max_ms=1200))
    caller.voice(120)  # a cough
    caller.quiet(300)
    caller.voice(100)
    caller.says("b", "yeah")  # recognised before the minimum: only a backchannel
    caller.voice(300)
    caller.says("b", "yeah okay")
    caller.quiet(300)
    assert caller.actions == [] and turns.phase == "speaking"
    turns.finished()
    caller.voice(200)
    caller.says("c", "thanks")
    caller.quiet(300)
    assert caller.actions == [Reply("thanks", caller.at - 300)], "the backchannel is not in it"


def test_a_backchannel_that_goes_on_into_words_interrupts():
    _, caller = agent_speaking(TurnSettings(barge_in_ms=180))
    caller.voice(100)
    caller.says("b", "yeah")
    caller.voice(200)
    assert caller.actions == []
    caller.says("b", "yeah but my card")
    assert caller.actions == [BargeIn(onset_ms=700.0)]


def test_a_late_final_of_an_answered_turn_is_not_heard_again():
    turns = Turns()
    caller = Caller(turns)
    caller.voice(400)
    caller.says("a", "book a room")
    caller.quiet(300)
    caller.says("a-final", "book a room please", settles=("a",))
    turns.spoke()
    turns.finished()
    caller.voice(300)
    caller.says("b", "for two")
    caller.quiet(300)
    assert caller.actions[-1] == Reply("for two", caller.at - 300)


def test_a_stalled_loop_handing_over_a_second_of_frames_decides_as_live():
    """Durations are media time: the frames of a stall, fed at once, end the turn where the
    quiet reached 300 ms, not where the loop woke up."""
    turns = Turns()
    for n in range(1, 21):
        turns.frame(n * 20.0, True)
    turns.heard("a", "hello")
    for n in range(21, 71):  # one second of quiet, all at once
        turns.frame(n * 20.0, False)
    assert turns.actions_ready() == [Reply("hello", 400.0)]


def test_the_turn_waits_for_a_recogniser_behind_the_voice_and_takes_all_its_words():
    """A busy recogniser gave "no that" for audio 300 ms in; the caller said "no, that is all.
    goodbye" for 1.2 s. Quiet does not end the turn on two words: the line that covers the
    voice's end does, with all of them."""
    turns = Turns()
    caller = Caller(turns)
    caller.voice(1200)
    caller.says("a", "no that", end_ms=300.0)
    caller.quiet(600)
    assert caller.actions == [], "the recogniser has not heard the end yet"
    caller.says("a", "no that is all goodbye", end_ms=1150.0)
    assert caller.actions == [Reply("no that is all goodbye", 1200.0)]


def test_a_recogniser_that_never_catches_up_is_waited_for_a_bounded_time():
    settings = TurnSettings(quiet_ms=300, recognition_wait_ms=1000)
    turns = Turns(settings)
    caller = Caller(turns)
    caller.voice(1000)
    caller.says("a", "hello", end_ms=200.0)
    caller.quiet(1280)
    assert caller.actions == []
    caller.quiet(40)  # 1320 ms of quiet: 300 + 1000 waited
    assert caller.actions == [Reply("hello", 1000.0)]


def test_barge_in_counts_loud_voice_so_a_vads_hangover_after_a_cough_is_not_speech():
    turns, caller = agent_speaking(TurnSettings(barge_in_ms=160))
    for _ in range(6):  # a 120 ms cough: loud
        caller.at += 20
        turns.frame(caller.at, True, loud=True)
    for _ in range(10):  # the VAD's hangover: "voice", 200 ms of it, but quiet
        caller.at += 20
        turns.frame(caller.at, True, loud=False)
    caller.quiet(300)
    assert turns.actions_ready() == [] and turns.phase == "speaking"
    for _ in range(8):  # words: loud
        caller.at += 20
        turns.frame(caller.at, True, loud=True)
    assert turns.actions_ready() == [BargeIn(onset_ms=caller.at - 160)]
