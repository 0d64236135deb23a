"""Messages in, typed events out: one :class:`Assembler` per stream, sans I/O.

Feed it every parsed message with :meth:`Assembler.receive`, then take
:meth:`Assembler.events_ready`: its one output (:mod:`callstream.audio.events`). An event that
goes to Kinesis carries its record, encoded: audio, start, DTMF, checkpoints, gaps, the end,
utterances. :meth:`Assembler.close` ends the stream (socket closed, drain, error) and flushes
everything; a ``stop`` message does the same by itself. Time is passed in (``now``, epoch
seconds) and limits are given, never read, so the whole thing is deterministic under test.
Each frame is decoded once, and counted once (:attr:`Assembler.stats`).

What it guarantees:

* Each track's frames are put in order on its timeline (:mod:`.timeline`: reorder, duplicates,
  gaps, restarts of the numbering) and aggregated into records of at most ``record_max_bytes``
  and ``record_max_ms`` (:mod:`.batching`); a record holds consecutive frames only. Non-media
  messages (DTMF, marks) use ``sequenceNumber`` too, and never count as lost media.
* A reconnect (Vobiz's ``maxRetries``: a fresh ``start`` with a new ``streamId``) given as a
  :class:`Continuation` continues the call's stream: same stream id, record numbers after the
  previous connection's, the timeline moved on by the outage (a ``gap`` of that length).
* Event records keep arrival order with the audio: audio that arrived before an event is
  written before it.
* Every byte of audio received after ``start`` is in exactly one record. Messages that arrive
  before ``start`` are held (bounded) and replayed once it comes.
* A ``start`` for another call (or stream) than the one the assembler was made for is refused
  with :class:`~callstream.exceptions.StreamMismatchError`: a token is for one call.
* L16 leaves little-endian, whichever order it came in (:mod:`.byteorder`); μ-law leaves as
  μ-law.

The pieces: each track's frames are placed on its :mod:`.timeline`, gathered by
:mod:`.batching` and numbered and encoded by :mod:`.record_builder`; :mod:`.continuation`
measures a reconnect's outage and :mod:`.byteorder` holds L16 until its order is known. The
assembler is the stream: its state, its tracks, and the order in which they speak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callstream.audio import codecs
from callstream.audio import events as ev
from callstream.audio.batching import FRAMES_PER_SECOND, OpenRecord, record_span
from callstream.audio.byteorder import ByteOrderHold, Release
from callstream.audio.continuation import Continuation, clock_at, outage
from callstream.audio.counts import AssemblerStats, StreamTotals
from callstream.audio.events import AudioEvent, StreamState, Write
from callstream.audio.protocol import (
    ClearedAudioMessage,
    DtmfMessage,
    MediaMessage,
    Message,
    PlayedStreamMessage,
    StartMessage,
    StopMessage,
    UnknownMessage,
    as_int,
)
from callstream.audio.record_builder import RecordBuilder, end_data, start_data
from callstream.audio.records import EventData, EventName, EventRecord
from callstream.audio.repeats import Kind, Repeats
from callstream.audio.timeline import Timeline, Timestamp
from callstream.audio.vad import SegmenterFactory, SegmenterLike, UtteranceLike
from callstream.exceptions import (
    InvalidAudioError,
    InvalidMessageError,
    InvalidStartError,
    OutOfOrderError,
    StreamMismatchError,
)
from callstream.vocabulary import MAX_INT, AudioLimits, Codec, Track

#: Most messages held while waiting for a late ``start`` (5 s of two tracks).
MAX_PENDING = 500

Recorded = tuple[EventRecord, Write]


@dataclass(slots=True)
class _Track:
    """A track's timeline, its open record and what listens to it."""

    timeline: Timeline
    open: OpenRecord
    segmenter: SegmenterLike | None = None
    speaking: bool = False
    byte_order: ByteOrderHold[MediaMessage] | None = None  # L16 only


class Assembler:
    """Turns one stream's Vobiz messages into events and Kinesis records. See the module."""

    def __init__(
        self,
        *,
        limits: AudioLimits,
        stream_id: str | None = None,
        call_uuid: str | None = None,
        segmenter_factory: SegmenterFactory | None = None,
        requested_format: str | None = None,
        continuation: Continuation | None = None,
        decode_media: bool = False,
        live_transcript: bool = False,
        language: str | None = None,
    ) -> None:
        """Create the assembler of one stream.

        Args:
            limits: record sizes, utterance and byte-order rules.
            stream_id: the stream this assembler is for, if the token names one: a ``start``
                of another stream is refused.
            call_uuid: the call this assembler is for (the token's): a ``start`` naming another
                call is refused; ``start.callId`` fills it if absent.
            segmenter_factory: builds a voice-activity segmenter per track (sample rate,
                track); None turns utterances off.
            requested_format: the content type asked for at start (``audio/x-l16;rate=16000``):
                what ``start`` does not say about the format falls back to it.
            continuation: this connection continues a call's stream after a reconnect.
            decode_media: also give every frame as PCM16 (:class:`~.events.MediaDecoded`), for
                an agent that listens or live recognition; off on the hot path.
            live_transcript: the stream is heard live: its utterance records say so.
            language: what the stream asked to be heard in (the token's), on its utterances.
        """
        self.stream_id = stream_id
        self._granted = (call_uuid, stream_id)
        self.vobiz_stream_id: str | None = None
        self._requested = requested_format
        self._continuation = continuation
        self._base_position = 0  # where tracks begin on the timeline (after a reconnect)
        # (Vobiz's timestamp, timeline sample) of the latest record that carried one
        self._media_clock: tuple[int, int] | None = None
        self._outage_due: Continuation | None = None  # measured at this connection's 1st frame
        self._outage_measured_by = "clock"  # a reconnect's gap: by "timestamps" or our "clock"
        self._nonmedia = 0  # non-media messages numbered by sequenceNumber since start
        self.call_uuid = call_uuid
        self._limits = limits
        self._segmenter_factory = segmenter_factory
        self._decode_media = decode_media
        self._live = live_transcript
        self._language = language
        self.codec: Codec | None = None
        self.sample_rate = 0
        self.state = StreamState.NEW
        self.stats = AssemblerStats()
        self.repeats = Repeats()  # DTMF and marks a peer repeats: held to a rate
        self._tracks: dict[str, _Track] = {}
        self._events: list[AudioEvent] = []
        self._pending: list[tuple[Message, float]] = []
        self._out: RecordBuilder | None = None  # from start on
        self._max_bytes = 0
        self._max_s = 0.0
        self._single_track = True

    # -- input ----------------------------------------------------------------------------

    def receive(self, message: Message, now: float = 0.0) -> None:
        """Take one parsed message.

        Raises:
            OutOfOrderError: a second ``start``, anything after the end, or more than
                ``MAX_PENDING`` messages before ``start``. The message is ignored; the stream
                carries on.
            InvalidStartError: a ``start`` the stream cannot begin with.
            StreamMismatchError: a ``start`` for another call or stream than this one's.
            InvalidAudioError: a payload that is not whole samples of the stream's codec. The
                frame is ignored (a later frame's number shows it as a gap).
        """
        if type(message) is MediaMessage and self.state is StreamState.STARTED:
            self._media(message, now)  # the hot path
            return
        if self.state is StreamState.ENDED:
            raise OutOfOrderError(f"{_event_name(message)} after the stream ended")
        if isinstance(message, UnknownMessage):
            self.stats.unknown_events += 1
            self._events.append(ev.Unknown(message.event))
            return
        if isinstance(message, StartMessage):
            self._start(message, now)
            return
        if self.state is StreamState.NEW:
            if len(self._pending) >= MAX_PENDING:
                raise OutOfOrderError(
                    f"{_event_name(message)} before start: more than {MAX_PENDING} held"
                )
            self._pending.append((message, now))
            return
        if isinstance(message, MediaMessage):
            self._media(message, now)
            return
        if message.sequence_number is not None:
            self._nonmedia += 1  # numbered like media: never a gap in a track's numbering
        kind: Kind = "dtmf" if isinstance(message, DtmfMessage) else "mark"
        if not isinstance(message, StopMessage) and not self.repeats.allow(kind, now):
            if self.repeats.tell(kind, now):
                told: EventData = {"what": kind, "dropped": self.repeats.dropped[kind]}
                recorded = self._event("limited", now, told)
                self._events.append(ev.Limited(kind, self.repeats.dropped[kind], *recorded))
            return
        if isinstance(message, DtmfMessage):
            body = message.dtmf
            data: EventData = {"digit": body.digit, "track": body.track}
            self._events.append(ev.Dtmf(body.digit, body.track, *self._event("dtmf", now, data)))
        elif isinstance(message, PlayedStreamMessage):
            data = {"name": message.name}
            self._events.append(ev.Played(message.name, *self._event("played_stream", now, data)))
        elif isinstance(message, ClearedAudioMessage):
            self._events.append(ev.Cleared(*self._event("cleared_audio", now, {})))
        else:
            self._end("stop", now, {})

    def note(self, name: EventName, now: float, data: EventData) -> None:
        """Record something our side did (an ``agent`` action) in order with the audio.

        Raises:
            OutOfOrderError: the stream has not started or has ended.
        """
        if self.state is not StreamState.STARTED:
            raise OutOfOrderError(f"{name} event while the stream is {self.state.value}")
        action = str(data.get("action", name))
        self._events.append(ev.Noted(action, *self._event(name, now, data)))

    def close(self, reason: str, now: float = 0.0) -> None:
        """End the stream without a ``stop`` (socket closed, drain, error): flush everything.

        Idempotent: closing an ended stream does nothing. Closing a stream that never started
        drops what was held for it (there is no format to interpret it with).
        """
        if self.state is StreamState.ENDED:
            return
        if self.state is StreamState.NEW:
            self.state = StreamState.ENDED
            self._pending.clear()
            return
        self._end("close", now, {"reason": reason})

    def flush_due(self, now: float) -> None:
        """Flush open records whose first frame arrived more than ``record_max_ms`` ago.

        The server calls this on a timer so a stalled stream never holds audio back longer
        than the bound, even with no new frames to trigger the size or duration limits.
        """
        if self.state is not StreamState.STARTED:
            return
        limit = self._max_s
        for track in list(self._tracks.values()):
            hold = track.byte_order
            if hold is not None and (since := hold.held_since) is not None and now - since >= limit:
                self._place_released(track, hold.give_up())  # a stalled track holds nothing
            if track.timeline.due(now):
                track.timeline.release(now, self)
            if track.open.buf and now - track.open.received_at >= limit:
                self._flush(track)

    # -- output ---------------------------------------------------------------------------

    def events_ready(self) -> list[AudioEvent]:
        """Return and forget what happened since the last call, in order."""
        if not self._events:
            return []
        out, self._events = self._events, []
        return out

    @property
    def tracks(self) -> tuple[str, ...]:
        """The tracks seen or announced so far."""
        return tuple(self._tracks)

    @property
    def stream_totals(self) -> StreamTotals:
        """The call stream's counts so far: this connection's and its earlier ones' together."""
        cont = self._continuation
        return StreamTotals(
            generation=cont.generation if cont is not None else 1,
            frames=self.stats.frames + (cont.frames if cont is not None else 0),
            utterances=self.stats.utterances + (cont.utterances if cont is not None else 0),
        )

    @property
    def position_ms(self) -> float:
        """Media time reached: the furthest track's position, in ms from stream start."""
        if not self._tracks or not self.sample_rate:
            return 0.0
        return max(t.timeline.position for t in self._tracks.values()) * 1000 / self.sample_rate

    @property
    def media_clock_ms(self) -> float | None:
        """Vobiz's timestamp at :attr:`position_ms`, if its frames carried timestamps."""
        return clock_at(self._media_clock, self.position_ms, self.sample_rate)

    # -- what each track's timeline tells (timeline.Placement) -----------------------------

    def placed(
        self, line: Timeline, frame: int | None, payload: bytes, timestamp: Timestamp, now: float
    ) -> None:
        """Put a frame the timeline placed into the open record; decode it for who listens."""
        track = self._tracks[line.name]
        start = line.last_frame_start
        if not track.open.fits(len(payload)):
            self._flush(track)
        first = frame if frame is not None else line.stats.frames - 1
        opens = not track.open.buf
        stamp = _timestamp(timestamp)
        full = track.open.add(first, payload, start, stamp, now)
        if opens and stamp is not None:
            self._media_clock = (stamp, start)
        if full:
            self._flush(track)
        segmenter = track.segmenter
        if segmenter is None and not self._decode_media:
            return
        pcm = codecs.ulaw_decode(payload) if self.codec == "mulaw" else payload  # decoded once
        if self._decode_media:
            self._events.append(ev.MediaDecoded(line.name, pcm, start))
        if segmenter is not None:
            segmenter.receive(pcm, start)
            found = segmenter.utterances_ready()
            if found:
                self._take_utterances(line.name, found, now)
            speaking = segmenter.active
            if speaking and not track.speaking:
                self._events.append(ev.SpeechBegan(line.name))
            track.speaking = speaking

    def lost(self, line: Timeline, frames: int, first_frame: int | None, now: float) -> None:
        """A gap: the open record ends before it, and the gap is recorded where it begins."""
        self._flush(self._tracks[line.name])
        data: EventData = {
            "track": line.name,
            "frames": frames,
            "first_frame": first_frame,
            "start_sample": line.position,
            "samples": line.gap_samples,
        }
        if first_frame is None:
            data["reason"] = "reconnect"
            data["measured_by"] = self._outage_measured_by
        reason = "lost" if first_frame is not None else "reconnect"
        self._events.append(ev.Gap(line.name, frames, reason, *self._record("gap", now, data)))

    def restarted(self, line: Timeline, from_frame: int, to_frame: int, now: float) -> None:
        """The numbering restarted: the open record ends, and that is recorded."""
        self._flush(self._tracks[line.name])
        data: EventData = {"track": line.name, "from_frame": from_frame, "to_frame": to_frame}
        recorded = self._record("renumbered", now, data)
        self._events.append(ev.Renumbered(line.name, from_frame, to_frame, *recorded))

    # -- the start, and a reconnect's continuation -----------------------------------------

    def _start(self, message: StartMessage, now: float) -> None:
        if self.state is not StreamState.NEW:
            raise OutOfOrderError("a second start on the same stream")
        call, stream = self._granted
        if call and message.call and message.call != call:
            raise StreamMismatchError(f"start.callId {message.call!r} is not the token's call")
        if stream and message.stream != stream:
            raise StreamMismatchError(
                f"start.streamId {message.stream!r} is not the token's stream"
            )
        codec, rate = message.media_format(self._requested)  # InvalidStartError: refused
        cont = self._continuation
        self.vobiz_stream_id = message.stream
        self.stream_id = cont.stream_id if cont is not None else message.stream or self.stream_id
        if self.stream_id is None:
            raise InvalidStartError("start: streamId is missing (top level and start.streamId)")
        self.state = StreamState.STARTED
        self.call_uuid = self.call_uuid or message.call
        self.codec = codec
        self.sample_rate = rate
        self._out = RecordBuilder(
            stream_id=self.stream_id,
            call_uuid=self.call_uuid,
            codec=codec,
            sample_rate=rate,
            stats=self.stats,
            continuation=cont,
            live=self._live,
            language=self._language,
        )
        bps = codecs.bytes_per_sample(codec)
        limits = self._limits
        span = record_span(
            bps, rate, limits.record_max_bytes, limits.record_max_ms, self.stream_id, self.call_uuid
        )
        self._max_bytes = span * bps
        self._max_s = span / rate
        for name in message.track_list:
            self._add_track(name)
        self._single_track = len(self._tracks) == 1
        data = start_data(
            message,
            codec=codec,
            sample_rate=rate,
            tracks=list(self._tracks),
            l16_byte_order=limits.l16_byte_order,
            continuation=cont,
        )
        self._events.append(
            ev.Started(
                self.stream_id,
                message.stream,
                self.call_uuid,
                codec,
                rate,
                tuple(self._tracks),  # type: ignore[arg-type]
                *self._event("start", now, data),
            )
        )
        for track in self._tracks.values():
            if track.byte_order is not None and track.byte_order.detector.forced:
                self._byte_order_found(track, 0.0)
        if cont is not None:
            self._resume(cont, now)
        pending, self._pending = self._pending, []
        for held, held_at in pending:
            self.receive(held, held_at)

    def _resume(self, cont: Continuation, now: float) -> None:
        """Continue the call's timeline after a reconnect: the outage is a gap on each track.

        Vobiz stamps every frame, so with timestamps on both sides the outage is measured at
        this connection's first frame, on Vobiz's clock: ours saw each socket when our loop got
        to it, seconds late on a busy host, and a recording built on it would slide.
        """
        base = round(cont.position_ms * self.sample_rate / 1000)
        for track in self._tracks.values():
            track.timeline.position = base
        self._base_position = base
        if cont.media_clock_ms is not None:
            self._outage_due = cont
        else:
            self._skip_outage(cont.outage_ms, "clock", now)

    def _skip_outage(self, outage_ms: float, measured_by: str, now: float) -> None:
        samples = round(outage_ms * self.sample_rate / 1000)
        self._outage_measured_by = measured_by
        if samples:
            frame = self.sample_rate // FRAMES_PER_SECOND
            for track in self._tracks.values():
                track.timeline.skip(-(-samples // frame), samples, now, self)
        self._base_position += samples

    # -- media ----------------------------------------------------------------------------

    def _add_track(self, name: Track) -> _Track:
        assert self.codec is not None
        bps = codecs.bytes_per_sample(self.codec)
        track = _Track(
            timeline=Timeline(name, bps, self.sample_rate // FRAMES_PER_SECOND),
            open=OpenRecord(name, self._max_bytes),
        )
        if self._segmenter_factory is not None:
            track.segmenter = self._segmenter_factory(self.sample_rate, name)
        if self.codec == "l16":
            track.byte_order = ByteOrderHold(self._limits.l16_byte_order)
        self._tracks[name] = track
        self.stats.tracks[name] = track.timeline.stats
        return track

    def _media(self, message: MediaMessage, now: float) -> None:
        body = message.media
        if (cont := self._outage_due) is not None:  # the reconnect's first frame
            self._outage_due = None
            self._skip_outage(*outage(cont, _timestamp(body.timestamp)), now)
        track = self._tracks.get(body.track)
        if track is None:  # a track that start did not announce: keep its audio all the same
            track = self._add_track(body.track)
            self._single_track = False
        payload = body.payload
        hold = track.byte_order
        if hold is not None:
            if len(payload) % 2:
                raise InvalidAudioError(
                    f"{body.track} L16 payload of {len(payload)} bytes is not whole samples"
                )
            order = hold.decided
            if order is None:
                release = hold.take(payload, message, now)
                if not release.frames and not track.timeline.started:
                    self._start_track(track)  # a held frame's place is where it arrived
                self._place_released(track, release)
                return
            if order == "big":
                payload = codecs.l16_swap(payload)
        self._place(track, message, payload, now)

    def _place_released(self, track: _Track, release: Release[MediaMessage]) -> None:
        """What the byte-order hold let go: said (found, or provisional), then placed."""
        if release.found is not None:
            self._byte_order_found(track, release.found)
        elif release.provisional:
            self._events.append(
                ev.ByteOrderFound(track.timeline.name, release.order, 0.0, provisional=True)
            )
        swap = release.order == "big"
        for message, at in release.frames:
            payload = message.media.payload
            self._place(track, message, codecs.l16_swap(payload) if swap else payload, at)

    def _place(self, track: _Track, message: MediaMessage, payload: bytes, now: float) -> None:
        if not payload:
            return
        chunk = message.media.chunk  # the hot path: ints pass straight through, the rest checked
        if type(chunk) is int and 0 <= chunk <= MAX_INT:
            frame: int | None = chunk
        else:
            frame = as_int(chunk, "media.chunk")
        if frame is None and self._single_track:
            number = as_int(message.sequence_number, "sequenceNumber")
            frame = None if number is None else number - self._nonmedia
        if not track.timeline.started:
            self._start_track(track)
        track.timeline.receive(frame, payload, message.media.timestamp, now, self)

    def _start_track(self, track: _Track) -> None:
        """A track's first frame: a track that starts late lines up with the others' latest."""
        others = [
            t.timeline.last_frame_start
            for t in self._tracks.values()
            if t.timeline.started and t is not track
        ]
        track.timeline.begin(max(others, default=self._base_position))

    # -- records --------------------------------------------------------------------------

    def _byte_order_found(self, track: _Track, evidence: float) -> None:
        hold = track.byte_order
        assert hold is not None and hold.decided is not None
        name = track.timeline.name
        data: EventData = {
            "track": name,
            "order": hold.decided,
            "evidence": round(evidence, 1),
            "forced": hold.detector.forced,
        }
        recorded = self._record("byte_order", 0.0, data)
        self._events.append(ev.ByteOrderFound(name, hold.decided, evidence, False, *recorded))

    def _flush(self, track: _Track) -> None:
        if track.open.buf:
            assert self._out is not None
            self._events.append(self._out.audio(track.open))

    def _event(self, name: EventName, now: float, data: EventData) -> Recorded:
        """An event record after the audio that arrived before it (held frames included)."""
        for track in self._tracks.values():
            if track.timeline.held:
                track.timeline.release(now, self)
            self._flush(track)
        return self._record(name, now, data)

    def _record(self, name: EventName, now: float, data: EventData) -> Recorded:
        assert self._out is not None
        return self._out.event(name, self.position_ms, now, data)

    def _end(self, name: EventName, now: float, data: EventData) -> None:
        for track in list(self._tracks.values()):
            hold = track.byte_order
            if hold is not None and hold.held_since is not None:
                self._place_released(track, hold.give_up())
        for track in self._tracks.values():
            if track.timeline.held:
                track.timeline.release(now, self)
            self._flush(track)
            if track.segmenter is not None:
                self._take_utterances(track.timeline.name, track.segmenter.close(), now)
        data = end_data(data, self.stats, self.stream_totals)
        for kind, dropped in self.repeats.dropped.items():
            if dropped:  # what the rate let go, on this connection
                data[f"{kind}_dropped"] = dropped
        reason = str(data.get("reason", name))
        recorded = self._record(name, now, data)
        self._events.append(ev.Ended(reason, self.stats.frames, self.stats.gaps, *recorded))
        self.state = StreamState.ENDED

    def _take_utterances(self, track: Track, found: Sequence[UtteranceLike], now: float) -> None:
        assert self._out is not None
        self._events.extend(self._out.utterances(track, found, now))


def _event_name(message: Message) -> str:
    if isinstance(message, UnknownMessage):
        return message.event
    return type(message).__name__.removesuffix("Message").lower()


def _timestamp(value: Timestamp) -> int | None:
    """Vobiz's timestamp is informational: one we cannot read is dropped, not the frame."""
    try:
        return as_int(value, "media.timestamp")
    except InvalidMessageError:
        return None
