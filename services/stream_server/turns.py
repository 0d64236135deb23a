"""Whose turn it is: the voice agent's turn-taking and barge-in, sans I/O.

:class:`Turns` hears the caller's track as the session does (each frame's voicing and the
media time it reaches, the live recogniser's lines) and what the agent does with its reply
(started speaking, finished), and answers with what to do now (:class:`Reply`,
:class:`Cancel`, :class:`BargeIn`). Every duration is measured in the caller's media time, not
by a clock, so a stalled event loop that hands over a second of frames at once decides as it
would have live (DESIGN.md rule 10).

* **End of turn**: the caller said something (a recognised word since the turn began) and has
  been quiet for ``quiet_ms``, or the VAD closed the utterance. A reply begins at once.
* **A continued word cancels**: voice again before the reply made a sound cancels it; the
  turn goes on and its words are kept (the next reply hears all of them).
* **Barge-in**: voice while the agent speaks interrupts it once it has lasted ``barge_in_ms``,
  unless every word recognised by then is a backchannel ("yeah", "mhm"): those wait for a
  real word, ``barge_in_max_ms`` of voice, or the quiet that ends them (a backchannel, or a
  cough, is then forgotten and the agent carries on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

#: Words a listener says to keep a speaker going, not to take the turn.
BACKCHANNELS = frozenset(
    {"yeah", "yes", "yep", "ok", "okay", "uh", "huh", "uhhuh", "mm", "mhm", "hmm", "right",
     "sure", "ah", "oh", "um", "er"}
)  # fmt: skip

_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class TurnSettings:
    """How long the caller's quiet ends a turn, and what interrupts the agent."""

    quiet_ms: float = 300.0
    barge_in_ms: float = 160.0
    barge_in_max_ms: float = 1200.0
    backchannels: frozenset[str] = BACKCHANNELS
    #: A turn's end waits for the recogniser to have heard its last voice (less this slack:
    #: a VAD's voice ends a little after the last word)…
    caught_up_slack_ms: float = 250.0
    #: …but no longer than this past ``quiet_ms`` (a recogniser far behind, or one that
    #: reports nothing for the quiet after the words).
    recognition_wait_ms: float = 1200.0


@dataclass(frozen=True)
class Reply:
    """The caller's turn ended: answer ``text`` (every word of the turn)."""

    text: str
    #: The caller's media time (ms) the turn's last voice ended: where reply latency starts.
    speech_end_ms: float


@dataclass(frozen=True)
class Cancel:
    """The caller went on before the reply made a sound: drop it (the turn continues)."""


@dataclass(frozen=True)
class BargeIn:
    """The caller talks over the agent: clear its audio and drop the reply."""

    #: The caller's media time (ms) the interrupting voice began.
    onset_ms: float


Action = Reply | Cancel | BargeIn
Phase = Literal["listening", "thinking", "speaking"]


@dataclass
class _Turn:
    lines: dict[str, str] = field(default_factory=dict)  # result id → its latest text
    onset_ms: float | None = None  # first voice of the turn (or of a candidate barge-in)
    voiced_ms: float = 0.0  # voice heard in it, ms
    loud_ms: float = 0.0  # of which loud: what a barge-in counts (a VAD's hangover is not)

    @property
    def text(self) -> str:
        return " ".join(t for t in self.lines.values() if t).strip()


class Turns:
    """The turn-taking state machine of one conversation (the caller's track only)."""

    def __init__(self, settings: TurnSettings | None = None) -> None:
        """Start listening."""
        self.settings = settings or TurnSettings()
        self.phase: Phase = "listening"
        self._turn = _Turn()
        self._replied = _Turn()  # the turn the reply in flight answers
        self._voice_until_ms = 0.0  # end of the last voiced frame
        self._heard_ms = 0.0  # end of the last frame heard
        self._recognised_ms = 0.0  # the media time the recogniser's lines cover up to
        self._out: list[Action] = []

    # -- what the caller does -----------------------------------------------------------------

    def frame(
        self, end_ms: float, voiced: bool, frame_ms: float = 20.0, loud: bool | None = None
    ) -> None:
        """A frame of the caller's track up to ``end_ms`` (media time), voiced or not.

        ``loud``: whether a voiced frame has the energy of speech (None: as voiced). A VAD
        keeps saying "voice" for 80-200 ms after a sound stops, so a 100 ms cough is 300 ms
        of its voice but only 100-120 ms of loud voice: barge-in counts the loud.
        """
        self._heard_ms = max(self._heard_ms, end_ms)
        turn = self._turn
        if voiced:
            if turn.onset_ms is None:
                turn.onset_ms = end_ms - frame_ms
            turn.voiced_ms += frame_ms
            if loud is not False:
                turn.loud_ms += frame_ms
            self._voice_until_ms = end_ms
            if self.phase == "thinking":
                self._cancel()
            elif self.phase == "speaking":
                self._consider_barge_in()
            return
        if turn.onset_ms is None or self._quiet_ms < self.settings.quiet_ms:
            return
        if self.phase == "speaking":  # a cough or a backchannel: forget it, go on speaking
            self._turn = _Turn()
        elif self.phase == "listening" and turn.text and self._caught_up():
            self._reply()

    def heard(
        self,
        result_id: str,
        text: str,
        settles: tuple[str, ...] = (),
        end_ms: float | None = None,
    ) -> None:
        """A line of the live recogniser: a partial, or a final that settles others.

        ``end_ms``: the media time the line covers up to (None: all heard so far).
        """
        self._recognised_ms = max(self._recognised_ms, self._heard_ms if end_ms is None else end_ms)
        if result_id in self._replied.lines or any(r in self._replied.lines for r in settles):
            self._replied.lines[result_id] = text.strip()  # a late final of a turn answered
            return
        for settled in settles:
            if settled != result_id:
                self._turn.lines.pop(settled, None)
        self._turn.lines[result_id] = text.strip()
        if self.phase == "speaking" and self._turn.onset_ms is not None:
            self._consider_barge_in()
        elif self.phase == "listening" and self._turn.onset_ms is not None:
            quiet = self._quiet_ms >= self.settings.quiet_ms
            if quiet and self._turn.text and self._caught_up():
                self._reply()  # the recogniser caught up after the quiet began

    def utterance_ended(self) -> None:
        """The VAD closed the caller's utterance (its hangover is longer than ``quiet_ms``)."""
        if self.phase == "listening" and self._turn.text and self._caught_up():
            self._reply()

    # -- what the agent does ------------------------------------------------------------------

    @property
    def heard_until_ms(self) -> float:
        """The caller's media time heard so far (the end of the last frame)."""
        return self._heard_ms

    def replying(self) -> None:
        """The agent begins to speak unasked (a greeting): as a reply that made no sound."""
        if self.phase == "listening":
            self.phase = "thinking"

    def spoke(self) -> None:
        """The reply's first audio went out: from now voice is a barge-in, not a cancel."""
        if self.phase == "thinking":
            self.phase = "speaking"

    def finished(self) -> None:
        """The reply is over (played, failed or cut): listen again."""
        if self.phase != "listening":
            self.phase = "listening"
            if self._turn.onset_ms is not None and self._voice_until_ms < self._heard_ms:
                self.frame(self._heard_ms, voiced=False)  # a turn begun meanwhile may be over

    def actions_ready(self) -> list[Action]:
        """Return and forget what to do, in order."""
        out, self._out = self._out, []
        return out

    # -- inside -------------------------------------------------------------------------------

    @property
    def _quiet_ms(self) -> float:
        """How long the caller has been quiet (media time since the last voiced frame)."""
        return self._heard_ms - self._voice_until_ms

    def _caught_up(self) -> bool:
        """Whether the recogniser has heard the turn's last voice (or waited long enough)."""
        slack = self.settings.caught_up_slack_ms
        if self._recognised_ms >= self._voice_until_ms - slack:
            return True
        return self._quiet_ms >= self.settings.quiet_ms + self.settings.recognition_wait_ms

    def _reply(self) -> None:
        self._out.append(Reply(self._turn.text, self._voice_until_ms))
        self.phase = "thinking"
        self._replied = self._turn
        self._turn = _Turn()

    def _cancel(self) -> None:
        self._out.append(Cancel())
        self.phase = "listening"
        # the words the reply was for are the start of the turn that goes on
        self._turn.lines = self._replied.lines | self._turn.lines
        self._turn.onset_ms = self._replied.onset_ms
        self._replied = _Turn()

    def _consider_barge_in(self) -> None:
        turn = self._turn
        assert turn.onset_ms is not None
        if turn.loud_ms < self.settings.barge_in_ms:
            return
        words = _WORD.findall(turn.text.lower())
        only_backchannel = bool(words) and all(w in self.settings.backchannels for w in words)
        if only_backchannel and turn.voiced_ms < self.settings.barge_in_max_ms:
            return
        self._out.append(BargeIn(turn.onset_ms))
        self.phase = "listening"
