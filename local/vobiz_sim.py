"""The Vobiz simulator: answer URLs, the REST stream endpoints, the WebSocket client, callbacks.

It behaves as Vobiz documents (``docs/protocol.md``), with wire code of its own
(:mod:`local.vobiz_wire`; nothing from callstream), so that the product is tested against Vobiz's
behaviour and not against its own assumptions:

* **Starting**: a stream started through its REST API (``local.vobiz_api``), or a call answered
  through an answer URL (:meth:`VobizSimulator.answer`), whose XML it reads by Vobiz's rules: a
  unidirectional ``<Stream>`` with nothing after it, or ``bidirectional`` with ``audioTrack``
  ``both``/``outbound``, hangs the call up ("End Of XML Instructions") and streams nothing.
* **Streaming**: a fresh ``start`` (ids nested in ``start``), 20 ms ``media`` frames per track
  in real time (or ``speed`` times faster); inbound L16 big-endian as Vobiz documents, or
  little-endian as Vobiz's own reference code sends it (``l16_little_endian``). At the end of the call the
  socket just closes: no ``stop`` event unless ``send_stop``.
* **Talk-back** (bidirectional only): ``playAudio`` L16 is read as little-endian; a
  ``playAudio`` whose content type or rate differs from the stream's format is counted and
  reported in ``play_mismatches`` (Vobiz would play noise), and so is one on a stream that is not
  bidirectional. ``checkpoint`` is answered with ``playedStream`` (``event`` and ``name`` only)
  once the audio queued before it has played; ``clearAudio`` with ``clearedAudio``; ``stop``
  closes the socket at once, drops what was queued, and ends the stream.
* **Reconnects**: the ``drop_at`` fault drops the socket; Vobiz then reconnects up to
  ``maxRetries`` times to the same URL with a fresh ``start`` and a new ``streamId``. Audio of
  the outage is lost, as on a real line.
* **Callbacks**, signed (V3 by default; V2, the URL-only V3 form or none on request):
  ``StartStream``, ``PlayedStream``, ``ClearedAudio``, ``DroppedStream``, ``StopStream`` (only for
  app-initiated stops, as Vobiz), and a ``Hangup`` to the call's hangup URL at the end of every
  call.

Usable on its own: ``python -m local.vobiz_sim --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local import vobiz_wire as wire
from local.loops import stop_loop
from local.vobiz_api import ApiStream, VobizApi
from local.vobiz_caller import Conversation
from local.vobiz_frames import read_wav

AUDIO = Path(__file__).resolve().parents[1] / "samples"
#: The longest conversation (10 minutes): a caller that never finishes is hung up.
CONVERSATION_MAX_FRAMES = 30_000
Signing = Literal["v3", "v2", "v3-url", "none"]


@dataclass
class Faults:
    """What to do on purpose that a real line or a real Vobiz may do."""

    drop_chunks: frozenset[int] = frozenset()  # frame numbers not sent (every track)
    drop_at: int | None = None  # drop the socket after this frame; reconnect per maxRetries
    disconnect_at: int | None = None  # drop the socket after this frame and never come back
    send_stop: bool = False  # send the inbound ``stop`` event some sources show, then close
    flat_start: bool = False  # the older flat ``start`` (ids and contentType at top level)
    numbers_as_strings: bool = False  # every number of the socket messages as a string
    # inbound L16 little-endian, as Vobiz's own reference code sends it (its docs: big-endian)
    l16_little_endian: bool = False
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False  # the first callbacks arrive last


@dataclass
class SimCall:
    """One simulated call's audio and what happened to it."""

    call_uuid: str
    inbound: Path | None = AUDIO / "support_call_8000_inbound.wav"
    outbound: Path | None = AUDIO / "support_call_8000_outbound.wav"
    faults: Faults = field(default_factory=Faults)
    hangup_url: str | None = None  # Vobiz's hangup_url for this call (else the simulator's)
    played: bytearray = field(default_factory=bytearray)  # what the caller heard, PCM16 LE
    played_rate: int = 8000
    frames_sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    stream_id: str | None = None  # the first stream's id
    stream_ids: list[str] = field(default_factory=list)  # one per connection, in order
    reconnects: int = 0
    error: str | None = None
    hangup_cause: str | None = None
    answer: wire.AnswerPlan | None = None
    play_mismatches: list[str] = field(default_factory=list)
    stopped_by_app: bool = False
    callbacks: list[tuple[str, int]] = field(default_factory=list)  # (Event, HTTP status)
    opened_at: float | None = None  # wall clock: the first WebSocket is open
    media_began: float | None = None  # wall clock of media time 0 (benchmarks measure from it)
    #: A caller that takes turns with the agent instead of playing the inbound WAV.
    conversation: Conversation | None = None


@dataclass
class StreamSpec:
    """A stream Vobiz will open: from a REST start or a ``<Stream>`` element."""

    url: str
    content_type: str
    audio_track: str
    bidirectional: bool
    max_retries: int = 0
    status_url: str | None = None
    status_method: str = "POST"
    api: ApiStream | None = None

    @property
    def codec(self) -> str:
        """``mulaw`` or ``l16``."""
        return wire.CONTENT_TYPES[self.content_type][0]

    @property
    def rate(self) -> int:
        """The wire's sample rate."""
        return wire.CONTENT_TYPES[self.content_type][1]

    @property
    def frame_bytes(self) -> int:
        """Bytes of 20 ms of PCM16 at the wire's rate."""
        return self.rate // 50 * 2

    @property
    def tracks(self) -> list[str]:
        """The tracks Vobiz sends."""
        return ["inbound", "outbound"] if self.audio_track == "both" else [self.audio_track]


class _Connection:
    """One WebSocket of a stream, and the talk-back state Vobiz keeps for it."""

    def __init__(self, ws: ClientConnection, stream_id: str) -> None:
        self.ws = ws
        self.stream_id = stream_id
        self.queue_until = 0.0  # monotonic time at which the queued playback ends
        self.pending: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()  # the app sent stop, or Vobiz was told to stop (REST)


class VobizSimulator:
    """REST API + answer URLs + a WebSocket client per stream + signed callbacks."""

    def __init__(
        self,
        auth_id: str = "MA_LOCAL",
        auth_token: str = "local-auth-token",  # noqa: S107 - the simulator's local default
        speed: float = 1.0,
        *,
        hangup_url: str | None = None,
        signing: Signing = "v3",
        reconnect_delay_s: float = 0.2,
    ) -> None:
        """Accept ``auth_id``/``auth_token`` on REST; sign requests with the token."""
        self.api = VobizApi(auth_id, auth_token)
        self.api.on_start = self._on_rest_start
        self.api.on_stop = self._on_rest_stop
        self.auth_token = auth_token
        self.speed = speed
        self.hangup_url = hangup_url
        self.signing: Signing = signing
        self.reconnect_delay_s = reconnect_delay_s
        self.calls: dict[str, SimCall] = {}
        self.signatures: list[str] = []  # every signature sent (tests check none is ever logged)
        self._live: dict[str, _Connection] = {}  # REST stream id → its open connection
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The REST base URL."""
        return self.api.url

    def start(self) -> VobizSimulator:
        """Serve REST and run the WebSocket clients' loop."""
        self.api.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.api.stop()
        stop_loop(self._loop, self._thread)

    def add_call(self, call: SimCall) -> SimCall:
        """Register a live call whose streams will play ``call``'s audio."""
        self.calls[call.call_uuid] = call
        return call

    # -- how streams start ----------------------------------------------------------------

    def _on_rest_start(self, stream: ApiStream) -> None:
        call = self.calls.get(stream.call_uuid) or self.add_call(SimCall(stream.call_uuid))
        body = stream.body
        spec = StreamSpec(
            url=body["service_url"],
            content_type=body.get("content_type", "audio/x-l16;rate=8000"),
            audio_track=body.get("audio_track", "both"),
            bidirectional=bool(body.get("bidirectional", False)),
            status_url=body.get("status_callback_url"),
            status_method=str(body.get("status_callback_method", "POST")).upper(),
            api=stream,
        )
        asyncio.run_coroutine_threadsafe(self._call(spec, call), self._loop)

    def _on_rest_stop(self, stream: ApiStream) -> None:
        connection = self._live.get(stream.stream_id)
        call = self.calls.get(stream.call_uuid)
        if call is not None:
            call.stopped_by_app = True
        if connection is not None:
            self._loop.call_soon_threadsafe(connection.stopped.set)

    def answer(self, call: SimCall, answer_url: str, method: str = "POST") -> wire.AnswerPlan:
        """Answer ``call`` as Vobiz does: fetch the answer URL (signed), act on its XML.

        Returns what Vobiz made of the XML; the stream, if any, runs in the background
        (``call.done`` is set when the call has ended).
        """
        self.add_call(call)
        params = {
            "CallUUID": call.call_uuid,
            "From": "+919000000001",
            "To": "+918000000002",
            "Direction": "inbound",
            "CallStatus": "in-progress",
        }
        status, xml = self._request(method, answer_url, params)
        plan = (
            wire.read_answer(xml)
            if status == 200
            else wire.AnswerPlan(None, f"answer URL answered {status}")
        )
        call.answer = plan
        if plan.hangup_cause is not None or plan.stream is None:
            call.hangup_cause = plan.hangup_cause or wire.END_OF_XML
            asyncio.run_coroutine_threadsafe(self._hangup(call, 0.0), self._loop)
            return plan
        verb = plan.stream
        spec = StreamSpec(
            url=verb.url,
            content_type=verb.content_type,
            audio_track=verb.audio_track,
            bidirectional=verb.bidirectional,
            max_retries=verb.max_retries,
            status_url=verb.status_callback_url,
            status_method=verb.status_callback_method,
        )
        asyncio.run_coroutine_threadsafe(self._call(spec, call), self._loop)
        return plan

    # -- the WebSocket side ---------------------------------------------------------------

    def _tracks(self, spec: StreamSpec, call: SimCall) -> dict[str, bytes]:
        tracks: dict[str, bytes] = {}
        for track in spec.tracks:
            if track == "inbound" and call.conversation is not None:
                tracks[track] = b""  # said as the conversation goes (Conversation.frame)
                continue
            path = call.inbound if track == "inbound" else call.outbound
            if path is not None:
                pcm, source_rate = read_wav(path)
                tracks[track] = wire.resample(pcm, source_rate, spec.rate)
        return tracks

    async def _call(self, spec: StreamSpec, call: SimCall) -> None:
        """The life of one stream on a call: connections (with reconnects), then the hang-up."""
        began = 0.0
        duration = 0.0
        try:
            tracks = self._tracks(spec, call)
            call.played_rate = spec.rate
            frames = max((-(-len(p) // spec.frame_bytes) for p in tracks.values()), default=0)
            if call.conversation is not None:
                frames = max(frames, CONVERSATION_MAX_FRAMES)  # it ends when the caller has
            duration = frames * 0.02 / self.speed
            step = 0.02 / self.speed
            began = time.monotonic()
            call.media_began = time.time()
            index = 0  # the next frame of the call to send
            retries = spec.max_retries
            first = True
            while True:
                stream_id = (
                    spec.api.stream_id if (first and spec.api is not None) else str(uuid.uuid4())
                )
                first = False
                call.stream_ids.append(stream_id)
                call.stream_id = call.stream_id or stream_id
                outcome, index = await self._connection(
                    spec, call, stream_id, tracks, frames, index, began, step
                )
                if outcome == "dropped" and retries > 0 and index < frames:
                    retries -= 1
                    call.reconnects += 1
                    # Vobiz comes back reconnect_delay_s later in the call; what played
                    # meanwhile is lost, as on a real call. Counted in the call's time, not
                    # measured: a late simulator thread (a busy host) would lose more, and at
                    # --speed 16 sixteen times more, than any real line.
                    await asyncio.sleep(self.reconnect_delay_s / self.speed)
                    index += round(self.reconnect_delay_s / 0.02)
                    began = time.monotonic() - index * step  # pace on from here
                    continue
                break
        except Exception as error:  # the simulator must report, never hang a test
            call.error = f"{type(error).__name__}: {error}"
        finally:
            if spec.api is not None:
                spec.api.state = "stopped"
                spec.api.ended_at = time.time()
            end = began + duration if began and call.conversation is None else 0.0
            await self._hangup(
                call, max(0.0, end - time.monotonic()) if not call.stopped_by_app else 0.0
            )

    async def _connection(
        self,
        spec: StreamSpec,
        call: SimCall,
        stream_id: str,
        tracks: dict[str, bytes],
        frames: int,
        index: int,
        began: float,
        step: float,
    ) -> tuple[str, int]:
        """One WebSocket; returns how it ended and the index of the next frame to send.

        Outcomes: ``done``, ``dropped``, ``failed`` (dropped for good), ``stopped``, ``closed``.
        """
        faults = call.faults
        try:
            ws = await connect(spec.url, max_size=2**20, open_timeout=10)
        except (OSError, InvalidStatus, TimeoutError) as error:
            call.error = f"connect failed: {error}"
            await self._status(spec, call, stream_id, "DroppedStream")
            return "dropped", index
        call.error = None  # connected: an earlier failed attempt was recovered from
        connection = _Connection(ws, stream_id)
        if spec.api is not None:
            self._live[spec.api.stream_id] = connection
        call.opened_at = call.opened_at or time.time()
        if not faults.reorder_callbacks:
            await self._status(spec, call, stream_id, "StartStream")
        reader = asyncio.create_task(self._read(connection, spec, call))
        outcome = "done"
        try:
            seq = 0
            stamp0 = int((call.media_began or time.time()) * 1000)
            await ws.send(json.dumps(self._start_message(spec, call, stream_id)))
            chunk = 0
            while index < frames:
                if connection.stopped.is_set():
                    outcome = "stopped"
                    break
                if call.conversation is not None and call.conversation.finished:
                    break  # the caller has said everything and heard the replies
                number = index + 1  # the call's frame number (faults are given in these)
                for at, kind in ((faults.drop_at, "dropped"), (faults.disconnect_at, "failed")):
                    if (
                        at is not None
                        and number == at + 1
                        and not (kind == "dropped" and call.reconnects)
                    ):
                        ws.transport.abort()  # an abrupt close: no stop, no close frame
                        await self._status(spec, call, stream_id, "DroppedStream")
                        return ("dropped" if kind == "dropped" else "failed"), index
                delay = began + index * step - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                chunk += 1
                for track, pcm in tracks.items():
                    seq += 1
                    if number in faults.drop_chunks:
                        continue
                    size = spec.frame_bytes
                    if track == "inbound" and call.conversation is not None:
                        frame = call.conversation.frame(time.monotonic())
                    else:
                        frame = pcm[index * size : (index + 1) * size].ljust(size, b"\x00")
                    media = {
                        "event": "media",
                        "sequenceNumber": seq,
                        "streamId": stream_id,
                        "media": {
                            "track": track,
                            # Vobiz stamps each frame with its time in the call
                            "timestamp": str(stamp0 + index * 20),
                            "chunk": chunk,
                            "payload": wire.b64(
                                wire.encode_frame(
                                    frame,
                                    spec.codec,
                                    l16_little_endian=call.faults.l16_little_endian,
                                )
                            ),
                        },
                    }
                    if faults.numbers_as_strings:
                        media["sequenceNumber"] = str(seq)
                        media["media"]["chunk"] = str(chunk)  # type: ignore[index]
                    await ws.send(json.dumps(media))
                    call.frames_sent += 1
                index += 1
            if outcome == "done" and faults.send_stop:
                await ws.send(json.dumps({"event": "stop", "streamId": stream_id}))
            await ws.close(1000)  # the end of the call: the socket just closes
        except ConnectionClosed as error:
            if not call.stopped_by_app:  # the app's stop is how a call it ends ends
                call.error = f"closed by the app: {error}"
            outcome = "closed"
        finally:
            reader.cancel()
            for task in connection.pending:
                task.cancel()
            if spec.api is not None:
                self._live.pop(spec.api.stream_id, None)
        if outcome == "stopped" or call.stopped_by_app:
            await self._status(spec, call, stream_id, "StopStream")
        if faults.reorder_callbacks:
            await self._status(spec, call, stream_id, "StartStream")
        return outcome, index

    def _start_message(self, spec: StreamSpec, call: SimCall, stream_id: str) -> dict[str, Any]:
        encoding, rate = wire.ENCODINGS[spec.codec], spec.rate
        tracks = list(spec.tracks)
        if call.faults.flat_start:
            return {
                "event": "start",
                "sequenceNumber": "0" if call.faults.numbers_as_strings else 0,
                "streamId": stream_id,
                "callId": call.call_uuid,
                "accountId": self.api.auth_id,
                "tracks": ",".join(tracks),
                "contentType": spec.content_type,
            }
        return {
            "event": "start",
            "sequenceNumber": "0" if call.faults.numbers_as_strings else 0,
            "start": {
                "streamId": stream_id,
                "callId": call.call_uuid,
                "accountId": self.api.auth_id,
                "tracks": tracks,
                "mediaFormat": {
                    "encoding": encoding,
                    "sampleRate": str(rate) if call.faults.numbers_as_strings else rate,
                },
            },
        }

    async def _read(self, connection: _Connection, spec: StreamSpec, call: SimCall) -> None:
        """Vobiz's side of talk-back: play queued audio, confirm checkpoints and clears."""
        ws = connection.ws
        async for raw in ws:
            msg = json.loads(raw)
            event = msg.get("event")
            now = time.monotonic()
            if event in ("playAudio", "checkpoint", "clearAudio") and not spec.bidirectional:
                call.play_mismatches.append(f"{event} on a stream that is not bidirectional")
                continue
            if event == "playAudio":
                self._play(connection, spec, call, msg.get("media") or {}, now)
            elif event == "checkpoint":
                name = str(msg.get("name", ""))
                wait = max(0.0, connection.queue_until - now)
                connection.pending.append(
                    asyncio.create_task(self._played(connection, spec, call, name, wait))
                )
            elif event == "clearAudio":
                for task in connection.pending:
                    task.cancel()
                connection.pending.clear()
                self._drop_queued(connection, call, now)
                if call.conversation is not None:
                    call.conversation.cleared(now)
                await ws.send(json.dumps({"event": "clearedAudio"}))
                await self._status(spec, call, connection.stream_id, "ClearedAudio")
            elif event == "stop":
                self._drop_queued(connection, call, now)
                call.stopped_by_app = True
                connection.stopped.set()
                await ws.close(1000)
                return

    def _play(
        self,
        connection: _Connection,
        spec: StreamSpec,
        call: SimCall,
        media: dict[str, Any],
        now: float,
    ) -> None:
        content_type = str(media.get("contentType", ""))
        rate = media.get("sampleRate")
        expected = wire.ENCODINGS[spec.codec]
        if content_type.split(";")[0].strip().lower() != expected or rate != spec.rate:
            call.play_mismatches.append(
                f"playAudio {content_type} at {rate} Hz on a {expected} {spec.rate} Hz stream"
            )
            return
        payload = base64.b64decode(media.get("payload", ""))
        if payload[:4] == b"RIFF":
            call.play_mismatches.append("playAudio carries a WAV header")
            return
        pcm = wire.mulaw_decode(payload) if spec.codec == "mulaw" else payload  # L16: LE
        call.played += pcm
        duration = len(pcm) / 2 / spec.rate / self.speed
        connection.queue_until = max(connection.queue_until, now) + duration
        if call.conversation is not None:
            call.conversation.heard(now, len(pcm) / 2 / spec.rate)

    def _drop_queued(self, connection: _Connection, call: SimCall, now: float) -> None:
        """Queued audio that had not played yet is never heard."""
        unplayed = max(0.0, connection.queue_until - now) * self.speed
        cut = int(unplayed * call.played_rate) * 2
        if cut:
            del call.played[max(0, len(call.played) - cut) :]
        connection.queue_until = now

    async def _played(
        self, connection: _Connection, spec: StreamSpec, call: SimCall, name: str, wait: float
    ) -> None:
        await asyncio.sleep(wait)
        await connection.ws.send(json.dumps({"event": "playedStream", "name": name}))
        if call.conversation is not None:
            call.conversation.marked()
        await self._status(spec, call, connection.stream_id, "PlayedStream", Name=name)

    # -- callbacks ------------------------------------------------------------------------

    async def _status(
        self, spec: StreamSpec, call: SimCall, stream_id: str, event: str, **extra: str
    ) -> None:
        if not spec.status_url:
            return
        params = {
            "Event": event,
            "StreamID": stream_id,
            "CallUUID": call.call_uuid,
            "From": "+919000000001",
            "To": "+918000000002",
            "Timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            **extra,
        }
        if event == "StartStream":
            params["ServiceURL"] = spec.url
        for _ in range(2 if call.faults.duplicate_callbacks else 1):
            status, _body = await asyncio.to_thread(
                self._request, spec.status_method, spec.status_url, params
            )
            call.callbacks.append((event, status))

    async def _hangup(self, call: SimCall, after_s: float) -> None:
        """The end of the call: the signed ``Hangup`` to the hangup URL; then ``done``."""
        try:
            await asyncio.sleep(after_s)
            url = call.hangup_url or self.hangup_url
            if url:
                params = {
                    "Event": "Hangup",
                    "CallUUID": call.call_uuid,
                    "From": "+919000000001",
                    "To": "+918000000002",
                    "CallStatus": "completed",
                    "HangupCause": call.hangup_cause or "NORMAL_CLEARING",
                    "Duration": str(int(time.time() - (call.media_began or time.time()))),
                }
                status, _body = await asyncio.to_thread(self._request, "POST", url, params)
                call.callbacks.append(("Hangup", status))
        finally:
            call.done.set()

    def _request(self, method: str, url: str, params: dict[str, str]) -> tuple[int, str]:
        """Send one signed request as Vobiz does (form POST, or GET with a query)."""
        method = method.upper()
        target = url
        data = None
        if method == "GET":
            target = url + ("&" if "?" in url else "?") + urlencode(params)
        else:
            data = urlencode(params).encode()
        nonce = uuid.uuid4().hex
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.signing == "v3":
            signature = wire.sign_v3(self.auth_token, method, url, params, nonce)
            headers |= {"X-Vobiz-Signature-V3": signature, "X-Vobiz-Signature-V3-Nonce": nonce}
        elif self.signing == "v3-url":
            signature = wire.sign_v3_url_only(self.auth_token, target, nonce)
            headers |= {"X-Vobiz-Signature-V3": signature, "X-Vobiz-Signature-V3-Nonce": nonce}
        elif self.signing == "v2":
            signature = wire.sign_v2(self.auth_token, target, nonce)
            headers |= {"X-Vobiz-Signature-V2": signature, "X-Vobiz-Signature-V2-Nonce": nonce}
        else:
            signature = ""
        if signature:
            self.signatures.append(signature)
        request = urllib.request.Request(  # noqa: S310 - a local URL
            target, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode("utf-8", "replace")
        except OSError as error:
            return 0, str(error)

    def send_callback(self, url: str, params: dict[str, str]) -> int:
        """Send one signed, form-encoded POST (tests send crafted callbacks through this)."""
        return self._request("POST", url, params)[0]


def main() -> None:
    """Run the simulator's REST API on its own until interrupted."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--auth-id", default="MA_LOCAL")
    parser.add_argument("--auth-token", default="local-auth-token")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="play N times faster than real time"
    )
    parser.add_argument("--hangup-url", help="where to send each call's signed Hangup")
    args = parser.parse_args()
    sim = VobizSimulator(
        args.auth_id, args.auth_token, args.speed, hangup_url=args.hangup_url
    ).start()
    print(
        f"Vobiz simulator: REST at {sim.url}/api/v1/Account/{args.auth_id}/Call/<call_uuid>/Stream/",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
