"""Messages in, typed events and Kinesis records out: one :class:`Assembler` per stream, sans I/O.

Feed it every parsed message with :meth:`Assembler.receive`, then take
:meth:`Assembler.events_ready` (:mod:`callstream.audio.events`: started, DTMF, played, cleared,
speech began, utterance found, gap, ended, and decoded media when asked for) and
:meth:`Assembler.records_ready` (for AudioStream; an utterance's record rides on its event, for
UtteranceStream). :meth:`Assembler.close` ends the stream (socket closed, drain, error) and
flushes everything; a ``stop`` message does the same by itself. Time is passed in (``now``,
epoch seconds) and settings are given, never read, so the whole thing is deterministic under
test. Each frame is decoded once, and counted once (:attr:`Assembler.stats`).

What it guarantees:

* Each track's frames are aggregated into :class:`~callstream.audio.records.AudioRecord` s of
  at most ``record_max_bytes`` and ``record_max_ms`` (settings; a time-capped record takes the
  frames that still fit in the KB it is billed for); a record holds consecutive frames only.
* Lost frames (a jump in ``chunk``, or in ``sequenceNumber`` on a single-track stream) give a
  ``gap`` event and move the track's timeline on by the missing duration, so ``start_sample``
  stays true. A frame that arrives ahead of a missing one is held (at most
  ``REORDER_FRAMES`` frames, or ``REORDER_WAIT_S``): frames swapped on the way are put back in
  order rather than counted lost. A number a little below the expected one is a duplicate:
  dropped and counted; one far below it (more than ``RESTART_FRAMES``) is a restart of the
  numbering: the audio is kept and a ``renumbered`` event recorded. Non-media messages (DTMF,
  marks) use ``sequenceNumber`` too, and never count as lost media.
* A reconnect (Vobiz's ``maxRetries``: a fresh ``start`` with a new ``streamId``) given as a
  :class:`Continuation` continues the call's stream: same stream id, record numbers after the
  previous connection's, the timeline moved on by the outage (a ``gap`` of that length).
* Event records (start, dtmf, playedStream, clearedAudio, agent actions, stop/close) keep arrival
  order with the audio: buffered audio that arrived before an event is emitted before it.
* Every byte of audio received after ``start`` is in exactly one record. Messages that arrive
  before ``start`` are held (bounded) and replayed once it comes.
* A ``start`` for another call (or stream) than the one the assembler was made for is refused
  with :class:`~callstream.exceptions.StreamMismatchError`: a token is for one call.
* L16 arrives big-endian and leaves little-endian; μ-law leaves as μ-law.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from callstream.audio import codecs, records
from callstream.audio.byteorder import DOCUMENTED, ByteOrder, ByteOrderDetector
from callstream.audio.events import (
    AudioEvent,
    ByteOrderFound,
    Cleared,
    Dtmf,
    Ended,
    Gap,
    MediaDecoded,
    Played,
    SpeechBegan,
    Started,
    StreamState,
    Unknown,
    UtteranceFound,
)
from callstream.audio.protocol import (
    ClearedAudioMessage,
    DtmfMessage,
    MediaMessage,
    Message,
    PlayedStreamMessage,
    StartMessage,
    UnknownMessage,
    as_int,
)
from callstream.audio.records import (
    AudioRecord,
    EventData,
    EventName,
    EventRecord,
    UtteranceRecord,
)
from callstream.exceptions import (
    InvalidAudioError,
    InvalidMessageError,
    InvalidStartError,
    OutOfOrderError,
    StreamMismatchError,
)
from callstream.settings import AudioSettings
from callstream.vocabulary import MAX_INT, Codec, Track

#: Most messages held while waiting for a late ``start`` (5 s of two tracks).
MAX_PENDING = 500
#: Frames held back, per track, while waiting for a missing one (60 ms of audio).
REORDER_FRAMES = 3
#: L16 frames a track holds at most while its audio has not told the byte order yet (0.5 s):
#: past it they go out in Vobiz's documented order, provisionally (see :mod:`.byteorder`).
BYTE_ORDER_HOLD = 25
#: Longest a frame is held back for a missing one before the gap is declared.
REORDER_WAIT_S = 0.1
#: A frame number more than this below the expected one restarts the numbering.
RESTART_FRAMES = 16
#: Record numbers of each reconnect start this far after the previous connection's.
SEQ_STRIDE = 2**32
#: Utterance numbers of each reconnect start this far after the previous connection's: the
#: transcripts are keyed on them, and a reconnect's first utterance must not pass for the
#: first connection's (it would be taken as transcribed already). The generation is bumped
#: when the lease is taken, so this holds even when the previous task died without a word.
UTTERANCE_STRIDE = 10**6


@dataclass(frozen=True)
class Continuation:
    """Where a call's stream stands when Vobiz reconnects it (a new socket, a fresh ``start``).

    Attributes:
        stream_id: the call stream this connection continues (its first connection's id).
        generation: 2 for the first reconnect, 3 for the next, …
        position_ms: media time the previous connection reached.
        outage_ms: how long the line was down (wall clock between the two sockets).
        previous_stream_id: Vobiz's stream id of the previous connection.
        frames: frames the earlier connections received (the end event counts the whole
            call stream, so that its recording and summary wait for all of it).
        utterances: utterances the earlier connections found.
    """

    stream_id: str
    generation: int
    position_ms: float
    outage_ms: float
    previous_stream_id: str | None = None
    frames: int = 0
    utterances: int = 0


class SegmenterLike(Protocol):
    """What the assembler needs of a voice-activity segmenter (``audio.vad.Segmenter``)."""

    def receive(self, pcm: bytes, start_sample: int) -> None:
        """Take PCM16 LE audio that starts at ``start_sample`` on the track's timeline."""

    def utterances_ready(self) -> Sequence[UtteranceLike]:
        """Return and forget finished utterances."""

    def close(self) -> Sequence[UtteranceLike]:
        """Flush the open utterance at end of stream; return what was still pending."""

    @property
    def active(self) -> bool:
        """True while inside an utterance (speech detected and not yet ended)."""


class UtteranceLike(Protocol):
    """What the assembler reads of an utterance."""

    @property
    def track(self) -> str:
        """``inbound`` or ``outbound``."""

    @property
    def index(self) -> int:
        """0, 1, 2, … per track."""

    @property
    def start_sample(self) -> int:
        """First sample on the track timeline."""

    @property
    def end_sample(self) -> int:
        """One past the last sample."""

    @property
    def split(self) -> bool:
        """Cut at the maximum length."""

    @property
    def pcm(self) -> bytes:
        """PCM16 LE audio."""


SegmenterFactory = Callable[[int, Track], SegmenterLike]


@dataclass
class TrackStats:
    """Counters of one track."""

    frames: int = 0
    bytes: int = 0
    gaps: int = 0
    lost_frames: int = 0
    duplicates: int = 0
    reordered: int = 0
    restarts: int = 0


@dataclass
class _Track:
    name: Track
    bytes_per_sample: int
    frame_samples: int  # samples in a normal frame, for sizing gaps
    position: int = 0  # next sample on this track's timeline
    last_frame_start: int = 0
    next_frame: int | None = None
    started: bool = False
    stats: TrackStats = field(default_factory=TrackStats)
    # frames that arrived ahead of a missing one: number → (LE payload, timestamp, arrival)
    held: dict[int, tuple[bytes, int | str | float | None, float]] = field(default_factory=dict)
    # the open record
    buf: bytearray = field(default_factory=bytearray)
    buf_first_frame: int = 0
    buf_frames: int = 0
    buf_start_sample: int = 0
    buf_timestamp: int | None = None
    buf_received_at: float = 0.0
    segmenter: SegmenterLike | None = None
    speaking: bool = False
    # L16 only: the byte order, and the frames held (wire bytes) until the audio tells it
    byte_order: ByteOrderDetector | None = None
    provisional: bool = False  # held frames went out in the documented order (said once)
    undecided: list[tuple[MediaMessage, float]] = field(default_factory=list)
    replaying: bool = False  # the held frames are going out: they were observed already


@dataclass(frozen=True)
class StreamTotals:
    """A call stream's counts over all its connections (Vobiz reconnects continue one stream)."""

    generation: int
    frames: int
    utterances: int


@dataclass
class AssemblerStats:
    """Counters of one stream, for the registry and metrics."""

    tracks: dict[str, TrackStats] = field(default_factory=dict)
    unknown_events: int = 0
    records: int = 0
    utterances: int = 0

    @property
    def frames(self) -> int:
        """Frames received on all tracks."""
        return sum(t.frames for t in self.tracks.values())

    @property
    def gaps(self) -> int:
        """Gap events on all tracks."""
        return sum(t.gaps for t in self.tracks.values())

    @property
    def lost_frames(self) -> int:
        """Frames known to be lost on all tracks."""
        return sum(t.lost_frames for t in self.tracks.values())


class Assembler:
    """Turns one stream's Vobiz messages into Kinesis records. See the module docstring."""

    def __init__(
        self,
        *,
        audio_settings: AudioSettings,
        stream_id: str | None = None,
        call_uuid: str | None = None,
        segmenter_factory: SegmenterFactory | None = None,
        requested_format: str | None = None,
        continuation: Continuation | None = None,
        decode_media: bool = False,
    ) -> None:
        """Create the assembler of one stream.

        Args:
            audio_settings: record sizes and limits.
            stream_id: the stream this assembler is for, if the token names one: a ``start``
                of another stream is refused.
            call_uuid: the call this assembler is for (the token's): a ``start`` naming another
                call is refused; ``start.callId`` fills it if absent.
            segmenter_factory: builds a voice-activity segmenter per track (sample rate,
                track); None turns utterances off.
            requested_format: the content type asked for at start (``audio/x-l16;rate=16000``):
                what ``start`` does not say about the format falls back to it.
            continuation: this connection continues a call's stream after a reconnect.
            decode_media: also give every frame as PCM16 (:class:`MediaDecoded`), for an agent
                that listens; off on the hot path.
        """
        self.stream_id = stream_id
        self._granted = (call_uuid, stream_id)
        self.vobiz_stream_id: str | None = None
        self._requested = requested_format
        self._continuation = continuation
        self._base_position = 0  # where tracks begin on the timeline (after a reconnect)
        self._nonmedia = 0  # non-media messages numbered by sequenceNumber since start
        self.call_uuid = call_uuid
        self._settings = audio_settings
        self._segmenter_factory = segmenter_factory
        self._decode_media = decode_media
        self.codec: Codec | None = None
        self.sample_rate = 0
        self.state = StreamState.NEW
        self.stats = AssemblerStats()
        self._tracks: dict[str, _Track] = {}
        self._out: list[AudioRecord | EventRecord] = []
        self._events: list[AudioEvent] = []
        self._pending: list[tuple[Message, float]] = []
        self._seq = 0
        self._utterance_base = 0  # a reconnect numbers its utterances after the earlier ones
        self._max_bytes = 0
        self._max_samples = 0
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
            self._events.append(Unknown(message.event))
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
        if isinstance(message, DtmfMessage):
            body = message.dtmf
            self._event("dtmf", now, {"digit": body.digit, "track": body.track})
            self._events.append(Dtmf(body.digit, body.track))
        elif isinstance(message, PlayedStreamMessage):
            self._event("played_stream", now, {"name": message.name})
            self._events.append(Played(message.name))
        elif isinstance(message, ClearedAudioMessage):
            self._event("cleared_audio", now, {})
            self._events.append(Cleared())
        else:
            self._end("stop", now, {})

    def note(self, name: EventName, now: float, data: EventData) -> None:
        """Record something our side did (an ``agent`` action) in order with the audio.

        Raises:
            OutOfOrderError: the stream has not started or has ended.
        """
        if self.state is not StreamState.STARTED:
            raise OutOfOrderError(f"{name} event while the stream is {self.state.value}")
        self._event(name, now, data)

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
            if track.undecided and now - track.undecided[0][1] >= limit:
                self._provisional(track)  # a stalled track holds nothing past the bound
            if track.held and now - min(h[2] for h in track.held.values()) >= REORDER_WAIT_S:
                self._release_held(track, now)
            if track.buf and now - track.buf_received_at >= limit:
                self._flush(track)

    # -- output ---------------------------------------------------------------------------

    def records_ready(self) -> list[AudioRecord | EventRecord]:
        """Return and forget the AudioStream records ready so far, in order."""
        if not self._out:
            return []
        out, self._out = self._out, []
        return out

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
        return max(t.position for t in self._tracks.values()) * 1000 / self.sample_rate

    # -- internals ------------------------------------------------------------------------

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
        tracks = message.track_list
        cont = self._continuation
        self.vobiz_stream_id = message.stream
        if cont is not None:
            self.stream_id = cont.stream_id
            self._seq = (cont.generation - 1) * SEQ_STRIDE
            self._utterance_base = (cont.generation - 1) * UTTERANCE_STRIDE
        else:
            self.stream_id = message.stream or self.stream_id
        if self.stream_id is None:
            raise InvalidStartError("start: streamId is missing (top level and start.streamId)")
        self.state = StreamState.STARTED
        self.call_uuid = self.call_uuid or message.call
        self.codec = codec
        self.sample_rate = rate
        bps = codecs.bytes_per_sample(self.codec)
        frame_samples = self.sample_rate // 50
        by_bytes = self._settings.record_max_bytes // bps // frame_samples * frame_samples
        by_time = self.sample_rate * self._settings.record_max_ms // 1000
        if by_time < by_bytes:
            # On-demand Kinesis bills a record rounded up to 1 KB: a record the time cap
            # ends part-way into a KB also carries the frames that still fit in that KB
            # (1 s of μ-law + header is 8.2 KB; 1.12 s fills the 9 KB it pays for anyway).
            header = records.audio_header_bytes(self.stream_id or "", self.call_uuid)
            paid = -(-(header + by_time * bps) // 1024) * 1024
            by_time = max(by_time, (paid - header) // bps // frame_samples * frame_samples)
        self._max_samples = max(min(by_bytes, by_time), frame_samples)
        self._max_bytes = self._max_samples * bps
        self._max_s = self._max_samples / self.sample_rate
        for name in tracks:
            self._add_track(name)
        self._single_track = len(self._tracks) == 1
        extra = message.extra_headers
        fmt = message.start.media_format
        data: EventData = {
            "codec": self.codec,
            "sample_rate": self.sample_rate,
            "tracks": list(tracks),
            "account_id": message.start.account_id,
            "encoding": fmt.encoding if fmt is not None else None,
            "vobiz_stream_id": message.stream,
        }
        if codec == "l16":
            data["l16_byte_order"] = self._settings.l16_byte_order  # auto: see byte_order
        if isinstance(extra, dict):
            data["extra_headers"] = extra
        elif extra:
            data["extra_headers"] = {"raw": extra}
        if cont is not None:
            data |= {
                "generation": cont.generation,
                "continues": cont.previous_stream_id,
                "outage_ms": round(cont.outage_ms, 1),
            }
        self._event("start", now, data)
        self._events.append(
            Started(
                stream_id=self.stream_id,
                vobiz_stream_id=message.stream,
                call_uuid=self.call_uuid,
                codec=codec,
                sample_rate=rate,
                tracks=tuple(track.name for track in self._tracks.values()),
            )
        )
        for track in self._tracks.values():
            if track.byte_order is not None and track.byte_order.forced:
                self._byte_order_found(track, 0.0)
        if cont is not None:
            self._resume(cont, now)
        pending, self._pending = self._pending, []
        for held, held_at in pending:
            self.receive(held, held_at)

    def _resume(self, cont: Continuation, now: float) -> None:
        """Continue the call's timeline after a reconnect: the outage is a gap on each track."""
        base = round(cont.position_ms * self.sample_rate / 1000)
        outage = round(cont.outage_ms * self.sample_rate / 1000)
        frame = self.sample_rate // 50
        for track in self._tracks.values():
            track.position = base
            if outage:
                track.stats.gaps += 1
                track.stats.lost_frames += -(-outage // frame)
                data: EventData = {
                    "track": track.name,
                    "frames": -(-outage // frame),
                    "first_frame": None,
                    "start_sample": base,
                    "samples": outage,
                    "reason": "reconnect",
                }
                self._emit_event("gap", now, data)
                self._events.append(Gap(track.name, -(-outage // frame), "reconnect"))
            track.position = base + outage
        self._base_position = base + outage

    def _add_track(self, name: Track) -> _Track:
        assert self.codec is not None
        track = _Track(
            name=name,
            bytes_per_sample=codecs.bytes_per_sample(self.codec),
            frame_samples=self.sample_rate // 50,
        )
        if self._segmenter_factory is not None:
            track.segmenter = self._segmenter_factory(self.sample_rate, name)
        if self.codec == "l16":
            track.byte_order = ByteOrderDetector(self._settings.l16_byte_order)
        self._tracks[name] = track
        self.stats.tracks[name] = track.stats
        return track

    def _media(self, message: MediaMessage, now: float) -> None:
        body = message.media
        track = self._tracks.get(body.track)
        if track is None:  # a track that start did not announce: keep its audio all the same
            track = self._add_track(body.track)
            self._single_track = False
        payload = body.payload
        if self.codec == "l16":
            if len(payload) % 2:
                raise InvalidAudioError(
                    f"{body.track} L16 payload of {len(payload)} bytes is not whole samples"
                )
            detector = track.byte_order
            assert detector is not None
            order = detector.decided
            if order is None:
                order = self._detect(track, detector, message, now)
                if order is None:
                    return  # held until the audio tells the byte order
            if order == "big":
                payload = codecs.l16_swap(payload)
        if not payload:
            return
        chunk = body.chunk  # the hot path: ints pass straight through, the rest is checked
        if type(chunk) is int and 0 <= chunk <= MAX_INT:
            frame: int | None = chunk
        else:
            frame = as_int(chunk, "media.chunk")
        if frame is None and self._single_track:
            number = as_int(message.sequence_number, "sequenceNumber")
            frame = None if number is None else number - self._nonmedia

        if not track.started:
            self._start_track(track)
        elif (
            frame is not None
            and track.next_frame is not None
            and frame != track.next_frame
            and not self._out_of_line(track, frame, payload, body.timestamp, now)
        ):
            return
        self._append(track, frame, payload, body.timestamp, now)
        if track.held:
            self._drain_held(track, now)

    def _start_track(self, track: _Track) -> None:
        """A track's first frame: a track that starts late lines up with the others' latest."""
        track.started = True
        others = [t.last_frame_start for t in self._tracks.values() if t.started and t is not track]
        track.position = max(others, default=self._base_position)

    def _detect(
        self, track: _Track, detector: ByteOrderDetector, message: MediaMessage, now: float
    ) -> ByteOrder | None:
        """The byte order to read this frame in, or None to hold it until one is known.

        A frame that does not move (silence, a constant) reads alike either way and tells
        nothing: unless frames are held before it, it goes out at once in Vobiz's documented
        order. A moving frame is held (in order) until the audio decides, for at most
        ``BYTE_ORDER_HOLD`` frames; past that what is held goes out in the documented order,
        provisionally, and detection goes on.
        """
        if track.replaying:
            return DOCUMENTED
        if detector.observe(message.media.payload) is not None:
            self._byte_order_found(track, detector.evidence)
            self._release_undecided(track)
            return detector.decided
        if not detector.moved and not track.undecided:
            return DOCUMENTED
        if not track.started:  # its place on the timeline is where it arrived, not where held
            self._start_track(track)
        track.undecided.append((message, now))
        if len(track.undecided) >= BYTE_ORDER_HOLD:
            self._provisional(track)
        return None

    def _provisional(self, track: _Track) -> None:
        """Release what was held in the documented order (said once); detection goes on."""
        if not track.provisional:
            track.provisional = True
            self._events.append(ByteOrderFound(track.name, DOCUMENTED, 0.0, provisional=True))
        assert track.byte_order is not None
        track.byte_order.restart()  # what was held told nothing: judge what follows afresh
        self._release_undecided(track)

    def _release_undecided(self, track: _Track) -> None:
        held, track.undecided = track.undecided, []
        track.replaying = True
        try:
            for message, at in held:
                self._media(message, at)
        finally:
            track.replaying = False

    def _byte_order_found(self, track: _Track, evidence: float) -> None:
        detector = track.byte_order
        assert detector is not None and detector.decided is not None
        data: EventData = {
            "track": track.name,
            "order": detector.decided,
            "evidence": round(evidence, 1),
            "forced": detector.forced,
        }
        self._emit_event("byte_order", 0.0, data)
        self._events.append(ByteOrderFound(track.name, detector.decided, evidence))

    def _out_of_line(
        self,
        track: _Track,
        frame: int,
        payload: bytes,
        timestamp: int | str | float | None,
        now: float,
    ) -> bool:
        """A frame whose number is not the next one: True when the caller appends it now."""
        expected = track.next_frame
        assert expected is not None
        if frame > expected:  # ahead of a missing frame: hold it a moment, in case it comes
            track.held[frame] = (payload, timestamp, now)
            if len(track.held) > REORDER_FRAMES:
                self._release_held(track, now)
            return False
        if expected - frame > RESTART_FRAMES:  # a new numbering: keep the audio
            self._release_held(track, now)
            track.stats.restarts += 1
            self._flush(track)
            data: EventData = {"track": track.name, "from_frame": expected, "to_frame": frame}
            self._emit_event("renumbered", now, data)
            track.next_frame = frame
            return True
        track.stats.duplicates += 1
        return False

    def _drain_held(self, track: _Track, now: float) -> None:
        """Append held frames that are next in line (a swapped frame came back)."""
        while track.next_frame in track.held:
            number = track.next_frame
            payload, timestamp, _ = track.held.pop(number)
            track.stats.reordered += 1
            self._append(track, number, payload, timestamp, now)

    def _release_held(self, track: _Track, now: float) -> None:
        """Stop waiting: the missing frames are lost (a gap); append what was held, in order."""
        held, track.held = track.held, {}
        for number in sorted(held):
            payload, timestamp, _ = held[number]
            expected = track.next_frame
            if expected is not None and number < expected:
                track.stats.duplicates += 1
                continue
            if expected is not None and number > expected:
                self._gap(track, number - expected, now)
            self._append(track, number, payload, timestamp, now)

    def _append(
        self,
        track: _Track,
        frame: int | None,
        payload: bytes,
        timestamp: int | str | float | None,
        now: float,
    ) -> None:
        """Put one frame on its track's timeline and into the open record."""
        size = len(payload)
        samples = size // track.bytes_per_sample
        buf = track.buf
        # a record holds consecutive frames only: a gap has already flushed it (see _gap)
        if buf and len(buf) + size > self._max_bytes:
            self._flush(track)
            buf = track.buf
        if not buf:
            track.buf_first_frame = frame if frame is not None else track.stats.frames
            track.buf_start_sample = track.position
            track.buf_timestamp = _timestamp(timestamp)
            track.buf_received_at = now
        buf += payload
        track.buf_frames += 1
        start = track.last_frame_start = track.position
        track.position = start + samples
        track.frame_samples = samples
        stats = track.stats
        stats.frames += 1
        stats.bytes += size
        if frame is not None:
            track.next_frame = frame + 1
        if len(buf) >= self._max_bytes:
            self._flush(track)
        segmenter = track.segmenter
        if segmenter is None and not self._decode_media:
            return
        pcm = codecs.ulaw_decode(payload) if self.codec == "mulaw" else payload  # decoded once
        if self._decode_media:
            self._events.append(MediaDecoded(track.name, pcm, start))
        if segmenter is not None:
            segmenter.receive(pcm, start)
            found = segmenter.utterances_ready()
            if found:
                self._take_utterances(track, found, now)
            speaking = segmenter.active
            if speaking and not track.speaking:
                self._events.append(SpeechBegan(track.name))
            track.speaking = speaking

    def _gap(self, track: _Track, missing: int, now: float) -> None:
        self._flush(track)
        samples = missing * track.frame_samples
        track.stats.gaps += 1
        track.stats.lost_frames += missing
        data: EventData = {
            "track": track.name,
            "frames": missing,
            "first_frame": track.next_frame,
            "start_sample": track.position,
            "samples": samples,
        }
        self._emit_event("gap", now, data)
        self._events.append(Gap(track.name, missing, "lost"))
        track.position += samples

    def _flush(self, track: _Track) -> None:
        if not track.buf:
            return
        assert self.stream_id is not None and self.codec is not None
        self._out.append(
            AudioRecord(
                stream_id=self.stream_id,
                call_uuid=self.call_uuid,
                seq=self._next_seq(),
                track=track.name,
                codec=self.codec,
                sample_rate=self.sample_rate,
                first_frame=track.buf_first_frame,
                frames=track.buf_frames,
                start_sample=track.buf_start_sample,
                media_timestamp=track.buf_timestamp,
                received_at=track.buf_received_at,
                payload=bytes(track.buf),
            )
        )
        track.buf = bytearray()
        track.buf_frames = 0

    def _event(self, name: EventName, now: float, data: EventData) -> None:
        for track in self._tracks.values():  # audio that arrived first goes first
            if track.held:
                self._release_held(track, now)
            self._flush(track)
        self._emit_event(name, now, data)

    def _emit_event(self, name: EventName, now: float, data: EventData) -> None:
        assert self.stream_id is not None
        self._out.append(
            EventRecord(
                stream_id=self.stream_id,
                call_uuid=self.call_uuid,
                seq=self._next_seq(),
                name=name,
                at_ms=self.position_ms,
                received_at=now,
                data=data,
            )
        )

    def _end(self, name: EventName, now: float, data: EventData) -> None:
        for track in list(self._tracks.values()):
            if track.undecided:
                self._provisional(track)
        for track in self._tracks.values():
            if track.held:
                self._release_held(track, now)
            self._flush(track)
            if track.segmenter is not None:
                self._take_utterances(track, track.segmenter.close(), now)
        totals = self.stream_totals
        data = {
            **data,
            "frames": self.stats.frames,
            "gaps": self.stats.gaps,
            "lost_frames": self.stats.lost_frames,
            "utterances": self.stats.utterances,
            # What the call stream's recording and summary must wait for: after a reconnect,
            # the earlier connections' frames and utterances too.
            "generation": totals.generation,
            "stream_frames": totals.frames,
            "stream_utterances": totals.utterances,
        }
        self._emit_event(name, now, data)
        self._events.append(
            Ended(str(data.get("reason", name)), self.stats.frames, self.stats.gaps)
        )
        self.state = StreamState.ENDED

    def _take_utterances(self, track: _Track, found: Sequence[UtteranceLike], now: float) -> None:
        assert self.stream_id is not None and self.codec is not None
        for utterance in found:
            self._events.append(
                UtteranceFound(
                    UtteranceRecord(
                        stream_id=self.stream_id,
                        call_uuid=self.call_uuid,
                        track=track.name,
                        index=self._utterance_base + utterance.index,
                        sample_rate=self.sample_rate,
                        start_sample=utterance.start_sample,
                        end_sample=utterance.end_sample,
                        split=utterance.split,
                        source_codec=self.codec,
                        received_at=now,
                        payload=utterance.pcm,
                    )
                )
            )
            self.stats.utterances += 1

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        self.stats.records += 1
        return seq


def _event_name(message: Message) -> str:
    if isinstance(message, UnknownMessage):
        return message.event
    return type(message).__name__.removesuffix("Message").lower()


def _timestamp(value: int | str | float | None) -> int | None:
    """Vobiz's timestamp is informational: one we cannot read is dropped, not the frame."""
    try:
        return as_int(value, "media.timestamp")
    except InvalidMessageError:
        return None
