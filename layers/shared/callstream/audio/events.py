"""What the audio core tells its caller: typed events, in the order they happened.

The :class:`~callstream.audio.assembler.Assembler` takes Vobiz messages and gives back these
(:meth:`~callstream.audio.assembler.Assembler.events_ready`) beside the Kinesis records, in the
manner of the ``websockets`` library's sans-I/O core: the caller (the stream server's session)
acts on each event once and never looks at the messages again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from callstream.audio.records import UtteranceRecord
from callstream.vocabulary import Codec, Track


class StreamState(enum.Enum):
    """Where a stream is: before its ``start``, between ``start`` and the end, ended."""

    NEW = "new"
    STARTED = "started"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Started:
    """The stream began: its format and tracks are known."""

    stream_id: str
    vobiz_stream_id: str | None
    call_uuid: str | None
    codec: Codec
    sample_rate: int
    tracks: tuple[Track, ...]


@dataclass(frozen=True, slots=True)
class MediaDecoded:
    """A frame as PCM16 LE at its place on the track's timeline (only when asked for)."""

    track: Track
    pcm: bytes
    start_sample: int


@dataclass(frozen=True, slots=True)
class ByteOrderFound:
    """A track's inbound L16 byte order was decided (from its audio, or by the setting)."""

    track: Track
    order: str  # big or little
    evidence: float  # how much rougher the other reading was (0: forced by the setting)
    provisional: bool = False  # the audio said nothing yet: Vobiz's documented order, for now


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed a key."""

    digit: str
    track: str | None


@dataclass(frozen=True, slots=True)
class Played:
    """Vobiz played up to a checkpoint (``playedStream``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Cleared:
    """Vobiz dropped what it had queued (``clearedAudio``)."""


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Voice activity began on a track (what barge-in acts on)."""

    track: Track


@dataclass(frozen=True, slots=True)
class UtteranceFound:
    """An utterance ended: its record goes to UtteranceStream."""

    record: UtteranceRecord


@dataclass(frozen=True, slots=True)
class Gap:
    """Frames were lost (or the line was down, on a reconnect): the timeline moved on."""

    track: Track
    frames: int
    reason: str  # "lost" or "reconnect"


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message of an event Vobiz may add later: counted, otherwise ignored."""

    event: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The stream ended (``stop``, or closed by the caller of the core): everything is out."""

    reason: str
    frames: int
    gaps: int


AudioEvent = (
    (Started | MediaDecoded | Dtmf | Played | Cleared | SpeechBegan | UtteranceFound | Gap)
    | Unknown
    | Ended
    | ByteOrderFound
)


def utterances(events: Iterable[AudioEvent]) -> list[UtteranceRecord]:
    """The utterance records among ``events``, in order."""
    return [e.record for e in events if isinstance(e, UtteranceFound)]
