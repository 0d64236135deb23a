"""One call's live transcript: its audio to the recognition worker, what it heard as records.

A session with live recognition holds one :class:`LiveTranscript`, sans I/O like the audio
core: the session hands it the start, each decoded frame, each utterance the VAD closed and the
end; the server hands it what the worker heard (:meth:`LiveTranscript.heard`); the session
takes :meth:`LiveTranscript.records_ready` and writes them to UtteranceStream, in the order
they were made:

* ``partial``: the line's words so far, while the caller speaks;
* ``provisional``: at our VAD's utterance end, at once, the line's last partial (the
  recogniser's own final may take a second more: Transcribe's comes 1.1 s after the end of
  speech at the median);
* ``final``: one per utterance our VAD cut, made of the recogniser's finals inside it
  (``utterance_index`` names it: the consumer stores it there), replacing the provisional
  one (same ``result_id``) and the partial lines it settles (``settles``).

A recogniser cuts its own lines: PocketSphinx here cuts them where our VAD does, Transcribe
where it hears a pause, so one of its lines may span two of our utterances, or two lines one.
So a final is the utterance's, not the line's: each of the recogniser's finals goes to the
pending utterance it shares the most audio with (or waits, bounded, for the utterance the VAD
has not closed yet), and an utterance is settled, in call order, once no line still open shares
its audio and the recogniser has finished something inside it or moved past its end. A line a
newer line of the track reaches over (a recogniser restarted, replaying) is abandoned: the
newer one hears its audio again.

The session's utterance records say ``live`` (the per-utterance consumer leaves them to this).
An utterance whose line cannot be finished (its track's recognition ended without a final:
the worker given up on, or further behind than its replay) is written again with ``live``
False, so the per-utterance path transcribes it: nothing said is left without a transcript.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from callstream.audio import records
from callstream.audio.records import TranscriptKind, TranscriptRecord, UtteranceRecord
from callstream.ports import LiveResult
from stream_server.ports import Recognizing

#: Utterances a track holds waiting for their live finals; past it the oldest goes to the
#: per-utterance path (a worker that far behind would take a minute to catch up).
MAX_PENDING = 32
#: Finals a track holds for an utterance our VAD has not closed yet; past it the oldest is
#: published as heard outside any utterance (our VAD kept none of it).
MAX_LOOSE = 16
#: Lines a track remembers to settle (partials seen, not yet replaced by a final).
MAX_LINES = 64


@dataclass
class _Span:
    start_sample: int
    end_sample: int


@dataclass
class _Waiting:
    """An utterance our VAD closed, waiting for the recogniser's finals inside it."""

    utterance: UtteranceRecord
    parts: list[LiveResult] = field(default_factory=list)
    covered: bool = False  # the recogniser finished or moved past its end: nothing more in it
    provisional_id: str | None = None


@dataclass
class _TrackState:
    open_lines: dict[str, LiveResult] = field(default_factory=dict)  # partials not yet final
    lines: dict[str, _Span] = field(default_factory=dict)  # lines seen, not yet settled
    pending: list[_Waiting] = field(default_factory=list)
    loose: list[LiveResult] = field(default_factory=list)  # finals before their utterance
    given: deque[LiveResult] = field(default_factory=lambda: deque(maxlen=MAX_LOOSE))


class LiveTranscript:
    """See the module."""

    def __init__(
        self, recognition: Recognizing, key: str, language: str, now: Callable[[], float]
    ) -> None:
        """Nothing is sent until :meth:`start`; ``now`` stamps the records (epoch seconds)."""
        self._recognition = recognition
        self.key = key
        self._language = language
        self._now = now
        self._out: list[bytes] = []
        #: Keep the lines made, as records, for :meth:`lines_ready` (drained by the session).
        self.keep_lines = False
        self._lines: list[TranscriptRecord] = []
        self._stream_id = ""
        self._call_uuid: str | None = None
        self._rate = 0
        self._open: set[str] = set()  # tracks being heard
        self._seen: set[str] = set()  # tracks ever opened
        self._tracks: dict[str, _TrackState] = {}

    def start(
        self, stream_id: str, call_uuid: str | None, rate: int, tracks: tuple[str, ...]
    ) -> None:
        """The stream started: open a recogniser per track."""
        self._stream_id, self._call_uuid, self._rate = stream_id, call_uuid, rate
        together = tuple(tracks) if len(tracks) > 1 else ()
        for track in tracks:
            self._open_track(track, together)

    def audio(self, track: str, pcm: bytes, start_sample: int) -> None:
        """A decoded frame of a track (a track ``start`` did not announce is opened here)."""
        if not self._rate:
            return
        if track not in self._seen:  # a track start did not announce
            self._open_track(track)
        if track in self._open:
            self._recognition.feed(self.key, track, start_sample, pcm)

    def utterance_ended(self, utterance: UtteranceRecord) -> None:
        """Our VAD closed an utterance: settled at once if its finals are in, else provisional.

        The provisional final is the line as heard so far (finals inside it, then the open
        partial lines it shares audio with), made at once.
        """
        track = utterance.track
        if track not in self._open:  # its recognition is over: the per-utterance path takes it
            self._fall_back([utterance])
            return
        state = self._tracks[track]
        waiting = _Waiting(utterance)
        state.pending.append(waiting)
        if len(state.pending) > MAX_PENDING:
            self._fall_back([state.pending.pop(0).utterance])
        # a line given to an earlier utterance that reaches into this one: its words there
        # are in that one, so this one is finished up to the line's end
        waiting.covered = any(_overlap(utterance, line) > 0 for line in state.given)
        loose = []
        for result in state.loose:  # finals the recogniser made before our VAD closed it
            if _overlap(utterance, result) > 0:
                waiting.parts.append(result)
                state.given.append(result)
                waiting.covered |= result.end_sample >= utterance.end_sample
            elif result.end_sample <= utterance.start_sample:  # no later utterance will hold it
                self._record(track, result, "final")
            else:
                loose.append(result)
        state.loose = loose
        self._settle(track, state)
        if waiting in state.pending:
            heard = [*waiting.parts, *_overlapping(utterance, state.open_lines.values())]
            if heard:
                waiting.provisional_id = heard[0].result_id
                self._record_utterance(track, state, waiting, "provisional", heard)

    def heard(self, track: str, results: list[LiveResult]) -> None:
        """What the worker heard on a track, in order."""
        state = self._tracks.get(track)
        if state is None:
            return
        for result in results:
            self._abandon_reached(state, result)
            for waiting in state.pending:  # the recogniser is done with what it passed
                utterance_end = waiting.utterance.end_sample
                if result.start_sample >= utterance_end or (
                    result.final and result.end_sample >= utterance_end
                ):
                    waiting.covered = True
            if not result.final:
                state.open_lines[result.result_id] = result
                self._remember(state, result)
                self._record(track, result, "partial")
                continue
            state.open_lines.pop(result.result_id, None)
            self._remember(state, result)
            inside = [w for w in state.pending if _overlap(w.utterance, result) > 0]
            for waiting in inside:  # its words there are in this line: to the one most in it
                waiting.covered = True
            if inside:
                max(inside, key=lambda w: _overlap(w.utterance, result)).parts.append(result)
                state.given.append(result)
            elif not result.text:  # withdrawn (a line too short to keep): nothing to wait for
                self._record(track, result, "final")
            else:
                state.loose.append(result)
                if len(state.loose) > MAX_LOOSE:
                    self._record(track, state.loose.pop(0), "final")
        self._settle(track, state)

    def lines_ready(self) -> list[TranscriptRecord]:
        """Return and forget the lines made since the last call.

        They are kept only with ``keep_lines`` (a voice agent listens to them).
        """
        out, self._lines = self._lines, []
        return out

    def records_ready(self) -> list[bytes]:
        """Return and forget the encoded records made since the last call, in order."""
        if not self._out:  # the usual case: called after every message
            return []
        out, self._out = self._out, []
        return out

    def close(self) -> None:
        """The stream ended: each track's last finals follow, then :meth:`track_closed`."""
        for track in sorted(self._open):
            self._recognition.close(self.key, track)

    def track_closed(self, track: str) -> None:
        """The worker finished a track (its last results came before this).

        An utterance it finished something inside is settled with what it heard; what it
        left without anything goes to the per-utterance path.
        """
        self._open.discard(track)
        state = self._tracks.get(track)
        if state is None:
            return
        state.open_lines.clear()  # nothing more comes for them
        for waiting in state.pending:
            waiting.covered = waiting.covered or bool(waiting.parts)
        self._settle(track, state)
        self._fall_back([w.utterance for w in state.pending])
        state.pending.clear()
        for result in state.loose:
            self._record(track, result, "final")
        state.loose.clear()

    def give_back(self) -> None:
        """Recognition is ending (a drain): every open track is over.

        What the tracks left without a final goes to the per-utterance path.
        """
        for track in sorted(self._open):
            self.track_closed(track)

    @property
    def finished(self) -> bool:
        """True once no track is being heard (every last final is in)."""
        return not self._open

    def _open_track(self, track: str, together: tuple[str, ...] = ()) -> None:
        self._seen.add(track)  # a track's recognition is opened once: once over, it stays over
        self._open.add(track)
        self._tracks[track] = _TrackState()
        self._recognition.open(self.key, track, self._rate, self._language, together)

    def _abandon_reached(self, state: _TrackState, result: LiveResult) -> None:
        """Open lines a newer line reaches over are abandoned: it hears their audio again.

        A track's lines are heard one after another; a new id that starts inside an open
        line's audio is a recogniser that restarted and replays it (the next line starts after).
        """
        if result.result_id in state.open_lines or not state.open_lines:
            return
        for line_id, line in list(state.open_lines.items()):
            if result.start_sample < line.end_sample:  # over its audio, not after it
                del state.open_lines[line_id]

    def _remember(self, state: _TrackState, result: LiveResult) -> None:
        state.lines[result.result_id] = _Span(result.start_sample, result.end_sample)
        if len(state.lines) > MAX_LINES:
            del state.lines[next(iter(state.lines))]

    def _settle(self, track: str, state: _TrackState) -> None:
        """Settle the utterances that are finished, in call order."""
        while state.pending:
            waiting = state.pending[0]
            open_inside = _overlapping(waiting.utterance, state.open_lines.values())
            if open_inside or not (waiting.covered or waiting.parts):
                return
            state.pending.pop(0)
            self._record_utterance(track, state, waiting, "final", waiting.parts)

    def _record_utterance(
        self,
        track: str,
        state: _TrackState,
        waiting: _Waiting,
        kind: TranscriptKind,
        heard: list[LiveResult],
    ) -> None:
        utterance = waiting.utterance
        heard = sorted(heard, key=lambda r: r.start_sample)
        settles = tuple(
            line_id for line_id, span in state.lines.items() if _overlap(utterance, span) > 0
        )
        if kind == "final":
            for line_id in settles:
                del state.lines[line_id]
        result_id = waiting.provisional_id or (heard[0].result_id if heard else None)
        confidences = [r.confidence for r in heard if r.confidence is not None]
        line = LiveResult(
            result_id=result_id or f"{track}-u{utterance.index}",
            final=kind == "final",
            text=" ".join(r.text for r in heard if r.text),
            start_sample=min([utterance.start_sample, *(r.start_sample for r in heard)]),
            end_sample=max([utterance.end_sample, *(r.end_sample for r in heard)]),
            confidence=sum(confidences) / len(confidences) if confidences else None,
        )
        self._record(
            track,
            line,
            kind,
            index=utterance.index,
            settles=tuple(s for s in settles if s != line.result_id),
            split=utterance.split,
        )

    def _fall_back(self, utterances: list[UtteranceRecord]) -> None:
        for utterance in utterances:
            self._out.append(records.encode(msgspec.structs.replace(utterance, live=False)))

    def _record(
        self,
        track: str,
        result: LiveResult,
        kind: TranscriptKind,
        index: int | None = None,
        settles: tuple[str, ...] = (),
        split: bool = False,
    ) -> None:
        rate = self._rate
        record = TranscriptRecord(
            stream_id=self._stream_id,
            call_uuid=self._call_uuid,
            track=track,  # type: ignore[arg-type]
            result_id=result.result_id,
            kind=kind,
            text=result.text,
            start_ms=result.start_sample * 1000 / rate,
            end_ms=result.end_sample * 1000 / rate,
            confidence=result.confidence,
            received_at=self._now(),
            utterance_index=index,
            language=self._language,
            settles=settles,
            split=split,
        )
        self._out.append(records.encode(record))
        if self.keep_lines:
            self._lines.append(record)


def _overlap(utterance: UtteranceRecord, span: LiveResult | _Span) -> int:
    """Samples the span shares with the utterance (both on the track's timeline)."""
    return min(utterance.end_sample, span.end_sample) - max(
        utterance.start_sample, span.start_sample
    )


def _overlapping(utterance: UtteranceRecord, lines: Iterable[LiveResult]) -> list[LiveResult]:
    return [line for line in lines if _overlap(utterance, line) > 0]
