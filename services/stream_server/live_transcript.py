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
* ``final``: the recogniser's, replacing the provisional one (same ``result_id``), naming the
  utterance it transcribes (``utterance_index``): the consumer stores it there.

The session's utterance records say ``live`` (the per-utterance consumer leaves them to this).
An utterance whose line cannot be finished (its track's recognition ended without a final:
the worker given up on, or further behind than its replay) is written again with ``live``
False, so the per-utterance path transcribes it: nothing said is left without a transcript.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from callstream.audio import records
from callstream.audio.records import TranscriptKind, TranscriptRecord, UtteranceRecord
from callstream.ports import LiveResult
from stream_server.ports import Recognizing

#: Utterances a track holds waiting for their live finals; past it the oldest goes to the
#: per-utterance path (a worker that far behind would take a minute to catch up).
MAX_PENDING = 32


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
        self._stream_id = ""
        self._call_uuid: str | None = None
        self._rate = 0
        self._open: set[str] = set()  # tracks being heard
        self._seen: set[str] = set()  # tracks ever opened
        self._last_partial: dict[str, LiveResult] = {}  # per track: the line not yet final
        self._pending: dict[str, list[UtteranceRecord]] = {}  # per track: awaiting a final

    def start(
        self, stream_id: str, call_uuid: str | None, rate: int, tracks: tuple[str, ...]
    ) -> None:
        """The stream started: open a recogniser per track."""
        self._stream_id, self._call_uuid, self._rate = stream_id, call_uuid, rate
        for track in tracks:
            self._open_track(track)

    def audio(self, track: str, pcm: bytes, start_sample: int) -> None:
        """A decoded frame of a track (a track ``start`` did not announce is opened here)."""
        if not self._rate:
            return
        if track not in self._seen:  # a track start did not announce
            self._open_track(track)
        if track in self._open:
            self._recognition.feed(self.key, track, start_sample, pcm)

    def utterance_ended(self, utterance: UtteranceRecord) -> None:
        """Our VAD closed an utterance: its line's last partial, at once, as provisional."""
        track = utterance.track
        if track not in self._open:  # its recognition is over: the per-utterance path takes it
            self._fall_back([utterance])
            return
        pending = self._pending.setdefault(track, [])
        pending.append(utterance)
        if len(pending) > MAX_PENDING:
            self._fall_back([pending.pop(0)])
        partial = self._last_partial.get(track)
        # the line this utterance is (a worker far behind may still be on an earlier one)
        if partial is not None and _overlaps(utterance, partial):
            del self._last_partial[track]
            self._record(track, partial, "provisional", end=utterance.end_sample)

    def heard(self, track: str, results: list[LiveResult]) -> None:
        """What the worker heard on a track, in order."""
        for result in results:
            if result.final:
                last = self._last_partial.get(track)
                if last is not None and last.result_id == result.result_id:
                    del self._last_partial[track]
                self._record(track, result, "final", index=self._take_utterance(track, result))
            else:
                self._last_partial[track] = result
                self._record(track, result, "partial")

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

        What it left without a final goes to the per-utterance path.
        """
        self._open.discard(track)
        self._fall_back(self._pending.pop(track, []))

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

    def _open_track(self, track: str) -> None:
        self._seen.add(track)  # a track's recognition is opened once: once over, it stays over
        self._open.add(track)
        self._recognition.open(self.key, track, self._rate, self._language)

    def _take_utterance(self, track: str, result: LiveResult) -> int | None:
        """The utterance a final transcribes: the first pending one its span overlaps."""
        pending = self._pending.get(track, [])
        for i, utterance in enumerate(pending):
            if _overlaps(utterance, result):
                del pending[i]
                return utterance.index
        return None

    def _fall_back(self, utterances: list[UtteranceRecord]) -> None:
        for utterance in utterances:
            self._out.append(records.encode(msgspec.structs.replace(utterance, live=False)))

    def _record(
        self,
        track: str,
        result: LiveResult,
        kind: TranscriptKind,
        end: int | None = None,
        index: int | None = None,
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
            end_ms=(result.end_sample if end is None else end) * 1000 / rate,
            confidence=result.confidence,
            received_at=self._now(),
            utterance_index=index,
            language=self._language,
        )
        self._out.append(records.encode(record))


def _overlaps(utterance: UtteranceRecord, result: LiveResult) -> bool:
    """True when the result's span shares audio with the utterance's (both on the track)."""
    return utterance.start_sample < result.end_sample and result.start_sample < utterance.end_sample
