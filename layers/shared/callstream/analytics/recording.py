"""The store_recording consumer's domain: audio records → S3 segments → one WAV per stream.

Each AudioStream record is handled on its own and idempotently (keys derive from the stream id
and the record's ``seq``). When the stream's end arrives (a ``stop`` or ``close`` event, or a
``close`` the sweeper wrote for a task that died), the recording is assembled from the
segments: one WAV (stereo when both tracks are present: inbound left, outbound right; PCM16
at the stream's rate; holes filled with silence) and a JSON sidecar, written with bounded
memory, and the registry links to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from callstream.audio import codecs, records
from callstream.audio.wav import Segment, plan, wav_chunks
from callstream.exceptions import NotReadyError, RecordError
from callstream.ports import EventBus, Recordings, Registry
from callstream.vocabulary import UNKNOWN_CALL


@dataclass(eq=False)
class RecordingServices:
    """What the recording consumer talks to."""

    store: Recordings
    registry: Registry
    events: EventBus

    @property
    def quarantine(self) -> Recordings:
        """Records that are not audio are kept in the recordings bucket too."""
        return self.store


def segment_key(stream_id: str, seq: int, track: str, start_sample: int, samples: int) -> str:
    """The object key of one audio segment: its place on the timeline is in the key."""
    return f"segments/{stream_id}/{seq:010d}_{track}_{start_sample}_{samples}"


def parse_segment_key(key: str) -> Segment:
    """A segment's place on the timeline, read back from its key (:func:`segment_key`)."""
    _, track, start, samples = key.rsplit("/", 1)[1].split("_")
    return Segment(track=track, start_sample=int(start), samples=int(samples), key=key)


def recording_keys(call_uuid: str | None, stream_id: str) -> tuple[str, str]:
    """Keys of a stream's WAV and sidecar."""
    base = f"recordings/{call_uuid or UNKNOWN_CALL}/{stream_id}"
    return f"{base}.wav", f"{base}.json"


def handle(svc: RecordingServices, data: bytes) -> str:
    """Handle one AudioStream record; returns what was done (for logs and tests).

    Raises:
        RecordError: the bytes are not a callstream record (:mod:`callstream.analytics.quarantine`).
        NotReadyError: the stream's end came before some of its records (see :func:`finalize`).
    """
    record = records.decode(data)
    if isinstance(record, records.AudioRecord):
        key = segment_key(
            record.stream_id, record.seq, record.track, record.start_sample, record.samples
        )
        svc.store.put(key, data)
        return "segment"
    if isinstance(record, records.EventRecord):
        doc = {
            "seq": record.seq,
            "name": record.name,
            "at_ms": record.at_ms,
            "received_at": record.received_at,
            "stream_id": record.stream_id,
            "call_uuid": record.call_uuid,
            "data": record.data,
        }
        svc.store.put(
            f"events/{record.stream_id}/{record.seq:010d}.json",
            json.dumps(doc).encode(),
            "application/json",
        )
        # On the bus too (DTMF, gaps, reconnects, talk-back, the end): the console's timeline.
        # At least once: a retried record publishes again; subscribers key on stream_id + seq.
        svc.events.publish("Session Event", doc)
        if record.name in ("stop", "close"):
            finalize(svc, record)
            return "finalized"
        return "event"
    raise RecordError(f"{type(record).__name__} does not belong on AudioStream")


def superseding(store: Recordings, key: str, generation: int) -> dict[str, Any] | None:
    """The document at ``key`` if a later connection of the call stream wrote it, else None.

    After Vobiz reconnects a call, each connection's end finalizes the one call stream; the
    later connection's covers the earlier's, so an earlier one arriving late (a retry, another
    shard iterator) must not overwrite it, nor announce it a second time.
    """
    body = store.find(key)
    if body is None:
        return None
    doc: dict[str, Any] = json.loads(body)
    return doc if int(doc.get("generation", 1)) > generation else None


def finalize(svc: RecordingServices, end: records.EventRecord) -> dict[str, Any]:
    """Assemble the stream's WAV and sidecar from its segments; link them in the registry.

    Raises:
        NotReadyError: the start, or fewer frames than the end event counts, is stored (a
            record is still on its way: the end fails and is retried after it).
    """
    stream_id = end.stream_id
    generation = _first_int(end.data, ("generation",), 1)
    wav_key, sidecar_key = recording_keys(end.call_uuid, stream_id)
    newer = superseding(svc.store, sidecar_key, generation)
    if newer is not None:  # a later connection's end came first: its recording is the whole
        return newer
    events = svc.store.events(stream_id)
    start = next((e for e in events if e["name"] == "start"), None)
    if start is None:
        raise NotReadyError(f"stream {stream_id}: its start event is not stored yet")
    rate = int(start["data"]["sample_rate"])
    codec = str(start["data"]["codec"])
    segments = svc.store.segments(stream_id)
    frames = sum(s.samples for s in segments) // (rate // 50)
    # The whole call stream's count (after a reconnect, every connection's frames).
    expected = _first_int(end.data, ("stream_frames", "frames"), 0)
    if frames < expected:
        raise NotReadyError(f"stream {stream_id}: {frames} of {expected} frames stored so far")

    def fetch(segment: Segment) -> bytes:
        record = records.decode(svc.store.get(segment.key))
        assert isinstance(record, records.AudioRecord)
        return codecs.to_pcm16(record.codec, record.payload)

    layout = plan(segments, rate)
    size = svc.store.write_streaming(wav_key, wav_chunks(layout, fetch), "audio/wav")
    gaps = [e["data"] for e in events if e["name"] == "gap"]
    utterances = _first_int(end.data, ("stream_utterances", "utterances"), 0)
    sidecar = {
        "stream_id": stream_id,
        "call_uuid": end.call_uuid,
        "recording": wav_key,
        "codec": codec,
        "sample_rate": rate,
        "channels": list(layout.channels),
        "duration_s": layout.duration_s,
        "bytes": size,
        "frames": frames,
        "segments": len(segments),
        "gaps": gaps,
        "silence_samples": {t: layout.silence_samples(t) for t in layout.channels},
        "end": {"name": end.name, **{k: v for k, v in end.data.items() if k == "reason"}},
        "generation": generation,
        "utterances": utterances,
    }
    svc.store.put(sidecar_key, json.dumps(sidecar, indent=2).encode(), "application/json")
    svc.registry.advance(
        stream_id,
        end.call_uuid or UNKNOWN_CALL,
        "stopped",
        recording_key=wav_key,
        end_reason=end.data.get("reason", end.name) if end.name == "close" else None,
    )
    svc.events.publish(
        "Recording Ready",
        {
            "stream_id": stream_id,
            "call_uuid": end.call_uuid,
            "recording": wav_key,
            "sidecar": sidecar_key,
            "duration_s": layout.duration_s,
            "generation": generation,
        },
    )
    return sidecar


def _first_int(data: records.EventData, names: tuple[str, ...], default: int) -> int:
    """The first of ``names`` in an end event's data that holds an int.

    Records written before the call-stream totals existed carry only the connection's.
    """
    for name in names:
        value = data.get(name)
        if isinstance(value, int):
            return value
    return default
