"""One stream's records, numbered and encoded: what the assembler hands Kinesis. Sans I/O.

:class:`RecordBuilder` numbers every AudioStream record of a connection (audio and events share
one sequence, so a consumer can put them back in order), encodes each once, and numbers the
utterances for UtteranceStream. A reconnect's builder starts its numbers a stride after the
previous connection's (:mod:`.continuation`). The data of the ``start`` and end events is
shaped here too, so the record contract (docs/records.md) is in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from callstream.audio import events as ev
from callstream.audio import records
from callstream.audio.batching import OpenRecord
from callstream.audio.continuation import SEQ_STRIDE, UTTERANCE_STRIDE, Continuation
from callstream.audio.counts import AssemblerStats, StreamTotals
from callstream.audio.events import Write
from callstream.audio.protocol import StartMessage
from callstream.audio.records import EventData, EventName, EventRecord, UtteranceRecord
from callstream.audio.vad import UtteranceLike
from callstream.vocabulary import Codec, Track


class RecordBuilder:
    """Numbers and encodes the records of one started connection. See the module."""

    __slots__ = (
        "_language",
        "_live",
        "_seq",
        "_stats",
        "_utterance_base",
        "call_uuid",
        "codec",
        "rate",
        "stream_id",
    )

    def __init__(
        self,
        *,
        stream_id: str,
        call_uuid: str | None,
        codec: Codec,
        sample_rate: int,
        stats: AssemblerStats,
        continuation: Continuation | None = None,
        live: bool = False,
        language: str | None = None,
    ) -> None:
        """Number from 0, or after the earlier connections' records when this one continues.

        ``live``: the stream is heard live, so its utterances are marked ``live``;
        ``language``: what the stream asked to be heard in, stamped on its utterances.
        """
        self.stream_id = stream_id
        self.call_uuid = call_uuid
        self.codec = codec
        self.rate = sample_rate
        self._stats = stats
        self._live = live
        self._language = language
        generation = continuation.generation if continuation is not None else 1
        self._seq = (generation - 1) * SEQ_STRIDE
        self._utterance_base = (generation - 1) * UTTERANCE_STRIDE

    def audio(self, open_record: OpenRecord) -> ev.AudioReady:
        """The track's open record, numbered and encoded (the next frame starts a new one)."""
        record = open_record.take(
            self._next_seq(), self.stream_id, self.call_uuid, self.codec, self.rate
        )
        ms = record.samples * 1000 / self.rate
        return ev.AudioReady(record, Write("audio", records.encode(record), ms))

    def event(
        self, name: EventName, at_ms: float, now: float, data: EventData
    ) -> tuple[EventRecord, Write]:
        """An event record at media time ``at_ms``, numbered after the audio before it."""
        record = EventRecord(
            stream_id=self.stream_id,
            call_uuid=self.call_uuid,
            seq=self._next_seq(),
            name=name,
            at_ms=at_ms,
            received_at=now,
            data=data,
        )
        return record, Write("audio", records.encode(record))

    def utterances(
        self, track: Track, found: Sequence[UtteranceLike], now: float
    ) -> list[ev.UtteranceFound]:
        """The utterances a track's segmenter found, as UtteranceStream records."""
        out = []
        for utterance in found:
            record = UtteranceRecord(
                stream_id=self.stream_id,
                call_uuid=self.call_uuid,
                track=track,
                index=self._utterance_base + utterance.index,
                sample_rate=self.rate,
                start_sample=utterance.start_sample,
                end_sample=utterance.end_sample,
                split=utterance.split,
                source_codec=self.codec,
                received_at=now,
                live=self._live,
                language=self._language,
                payload=utterance.pcm,
            )
            out.append(ev.UtteranceFound(record, Write("utterances", records.encode(record))))
        self._stats.utterances += len(out)
        return out

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        self._stats.records += 1
        return seq


def start_data(
    message: StartMessage,
    *,
    codec: Codec,
    sample_rate: int,
    tracks: Sequence[str],
    l16_byte_order: str,
    continuation: Continuation | None,
) -> EventData:
    """The ``start`` event's data: the format, the tracks, Vobiz's headers, what it continues."""
    extra = message.extra_headers
    fmt = message.start.media_format
    data: EventData = {
        "codec": codec,
        "sample_rate": sample_rate,
        "tracks": list(tracks),
        "account_id": message.start.account_id,
        "encoding": fmt.encoding if fmt is not None else None,
        "vobiz_stream_id": message.stream,
    }
    if codec == "l16":
        data["l16_byte_order"] = l16_byte_order  # auto: see the byte_order event
    if isinstance(extra, dict):
        data["extra_headers"] = extra
    elif extra:
        data["extra_headers"] = {"raw": extra}
    if continuation is not None:
        data |= {
            "generation": continuation.generation,
            "continues": continuation.previous_stream_id,
            "outage_ms": round(continuation.outage_ms, 1),
        }
    return data


def end_data(data: EventData, stats: AssemblerStats, totals: StreamTotals) -> EventData:
    """The end event's data: why, and what this connection and the whole call stream counted."""
    return {
        **data,
        "frames": stats.frames,
        "gaps": stats.gaps,
        "lost_frames": stats.lost_frames,
        "utterances": stats.utterances,
        # What the call stream's recording and summary must wait for: after a reconnect,
        # the earlier connections' frames and utterances too.
        "generation": totals.generation,
        "stream_frames": totals.frames,
        "stream_utterances": totals.utterances,
    }
