"""What the audio core tells its caller: typed events, in the order they happened.

The :class:`~callstream.audio.assembler.Assembler`'s one output is
:meth:`~callstream.audio.assembler.Assembler.events_ready`, in the manner of the ``websockets``
library's sans-I/O core (one input call, one output list). An event that must reach Kinesis
carries its record, typed (``record``) and encoded (``write``: which stream, the bytes, the
audio it holds), so the caller writes what it is handed, in the order given, and acts on the
rest; it never looks at the messages again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from callstream.audio.records import AudioRecord, EventRecord, UtteranceRecord
from callstream.vocabulary import Codec, Track


class StreamState(enum.Enum):
    """Where a stream is: before its ``start``, between ``start`` and the end, ended."""

    NEW = "new"
    STARTED = "started"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Write:
    """Bytes for one Kinesis stream: AudioStream (audio and events) or UtteranceStream."""

    stream: Literal["audio", "utterances"]
    data: bytes
    ms: float = 0.0  # audio in it (what the writer's lag is counted in)


@dataclass(frozen=True, slots=True)
class AudioReady:
    """Consecutive frames of one track, as one AudioStream record."""

    record: AudioRecord
    write: Write = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Started:
    """The stream began: its format and tracks are known."""

    stream_id: str
    vobiz_stream_id: str | None
    call_uuid: str | None
    codec: Codec
    sample_rate: int
    tracks: tuple[Track, ...]
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MediaDecoded:
    """A frame as PCM16 LE at its place on the track's timeline (only when asked for)."""

    track: Track
    pcm: bytes
    start_sample: int
    write: ClassVar[Write | None] = None


@dataclass(frozen=True, slots=True)
class ByteOrderFound:
    """A track's inbound L16 byte order was decided (from its audio, or by the setting)."""

    track: Track
    order: str  # big or little
    evidence: float  # how much rougher the other reading was (0: forced by the setting)
    provisional: bool = False  # the audio said nothing yet: Vobiz's documented order, for now
    # none while provisional
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed a key."""

    digit: str
    track: str | None
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Played:
    """Vobiz played up to a checkpoint (``playedStream``)."""

    name: str
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Cleared:
    """Vobiz dropped what it had queued (``clearedAudio``)."""

    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Limited:
    """A peer's repeated events (DTMF, marks) came past their rate: dropped, counted, told."""

    what: str  # "dtmf" or "mark"
    dropped: int  # of that kind on this connection so far
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Noted:
    """Something our side did (an ``agent`` action: play, checkpoint, clear), in the record."""

    action: str
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Voice activity began on a track (what barge-in acts on)."""

    track: Track
    write: ClassVar[Write | None] = None


@dataclass(frozen=True, slots=True)
class UtteranceFound:
    """An utterance ended: its record goes to UtteranceStream."""

    record: UtteranceRecord
    write: Write = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Gap:
    """Frames were lost (or the line was down, on a reconnect): the timeline moved on."""

    track: Track
    frames: int
    reason: str  # "lost" or "reconnect"
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Renumbered:
    """A track's frame numbering jumped back (a restart on Vobiz's side): the audio is kept."""

    track: Track
    from_frame: int
    to_frame: int
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message of an event Vobiz may add later: counted, otherwise ignored."""

    event: str
    write: ClassVar[Write | None] = None


@dataclass(frozen=True, slots=True)
class Ended:
    """The stream ended (``stop``, or closed by the caller of the core): everything is out."""

    reason: str
    frames: int
    gaps: int
    record: EventRecord | None = field(default=None, compare=False, repr=False)
    write: Write | None = field(default=None, compare=False, repr=False)


AudioEvent = (
    AudioReady
    | Started
    | MediaDecoded
    | ByteOrderFound
    | Dtmf
    | Played
    | Cleared
    | Limited
    | Noted
    | SpeechBegan
    | UtteranceFound
    | Gap
    | Renumbered
    | Unknown
    | Ended
)


def records(events: Iterable[AudioEvent]) -> list[AudioRecord | EventRecord]:
    """The AudioStream records among ``events`` (audio and events), in order."""
    out: list[AudioRecord | EventRecord] = []
    for event in events:
        record = getattr(event, "record", None)
        if isinstance(record, AudioRecord | EventRecord):
            out.append(record)
    return out


def utterances(events: Iterable[AudioEvent]) -> list[UtteranceRecord]:
    """The utterance records among ``events``, in order."""
    return [e.record for e in events if isinstance(e, UtteranceFound)]
