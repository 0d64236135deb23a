"""The Vobiz simulator: the REST stream endpoints, the WebSocket client, signed callbacks.

For every stream started through its REST API (``local.vobiz_api``) it connects to the
``service_url`` as Vobiz does and plays the call's WAV files in real time (or ``speed`` times
faster), one or both tracks, in the requested codec, with sequence numbers, chunks and
timestamps. It answers ``checkpoint`` with ``playedStream`` once the audio queued before it has
"played", ``clearAudio`` with ``clearedAudio``, keeps every ``playAudio`` it receives (what the
caller heard, saved as a WAV), and sends V3-signed status callbacks (StartStream, PlayedStream,
ClearedAudio, StopStream). Fault switches: drop frames, disconnect mid-call, omit the stop
event, duplicate and reorder callbacks.

Usable on its own: ``python -m local.vobiz_sim --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callstream import codecs
from callstream.callbacks import signed_string
from local.vobiz_api import ApiStream, VobizApi
from local.vobiz_frames import CallAudio, messages, read_wav, to_wire_rate

AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
FORMATS = {
    "audio/x-mulaw;rate=8000": ("mulaw", 8000),
    "audio/x-l16;rate=8000": ("l16", 8000),
    "audio/x-l16;rate=16000": ("l16", 16000),
}


@dataclass
class Faults:
    """What to get wrong on purpose."""

    drop_chunks: frozenset[int] = frozenset()  # frame numbers not sent (both tracks)
    disconnect_at: int | None = None  # close the socket abruptly after this frame
    omit_stop: bool = False
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False  # StopStream before StartStream


@dataclass
class SimCall:
    """One simulated call's audio and what happened to it."""

    call_uuid: str
    inbound: Path | None = AUDIO / "support_call_8000_inbound.wav"
    outbound: Path | None = AUDIO / "support_call_8000_outbound.wav"
    faults: Faults = field(default_factory=Faults)
    played: bytearray = field(default_factory=bytearray)  # what the caller heard, PCM16 LE
    played_rate: int = 8000
    frames_sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    stream_id: str | None = None
    error: str | None = None
    opened_at: float | None = None  # wall clock: the WebSocket is open
    media_began: float | None = None  # wall clock of media time 0 (benchmarks measure from it)


class VobizSimulator:
    """REST API + a WebSocket client per stream + signed callbacks."""

    def __init__(
        self,
        auth_id: str = "MA_LOCAL",
        auth_token: str = "local-auth-token",  # noqa: S107 - the simulator's local default
        speed: float = 1.0,
    ) -> None:
        """Accept ``auth_id``/``auth_token`` on REST; sign callbacks with the token."""
        self.api = VobizApi(auth_id, auth_token)
        self.api.on_start = self._on_start
        self.auth_token = auth_token
        self.speed = speed
        self.calls: dict[str, SimCall] = {}
        self.signatures: list[str] = []  # every signature sent (tests check none is ever logged)
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
        from local.stack import stop_loop

        self.api.stop()
        stop_loop(self._loop, self._thread)

    def add_call(self, call: SimCall) -> SimCall:
        """Register a live call whose streams will play ``call``'s audio."""
        self.calls[call.call_uuid] = call
        return call

    def _on_start(self, stream: ApiStream) -> None:
        call = self.calls.get(stream.call_uuid) or self.add_call(SimCall(stream.call_uuid))
        call.stream_id = stream.stream_id
        asyncio.run_coroutine_threadsafe(self._stream(stream, call), self._loop)

    # -- the WebSocket side ---------------------------------------------------------------

    async def _stream(self, stream: ApiStream, call: SimCall) -> None:
        body = stream.body
        codec, rate = FORMATS[body.get("content_type", "audio/x-l16;rate=8000")]
        wanted = {
            "inbound": ["inbound"],
            "outbound": ["outbound"],
            "both": ["inbound", "outbound"],
        }[body.get("audio_track", "inbound")]
        tracks = {}
        for track in wanted:
            path = call.inbound if track == "inbound" else call.outbound
            if path is not None:
                pcm, source_rate = read_wav(path)
                tracks[track] = to_wire_rate(pcm, source_rate, rate)
        audio = CallAudio(
            tracks=tracks,
            sample_rate=rate,
            stream_id=stream.stream_id,
            call_id=stream.call_uuid,
            account_id=self.api.auth_id,
            drop=frozenset((t, c) for t in tracks for c in call.faults.drop_chunks),
        )
        call.played_rate = rate
        callback = body.get("status_callback_url")
        try:
            if not call.faults.reorder_callbacks:
                await self._callbacks(callback, stream, ["StartStream"], call)
            async with connect(body["service_url"], max_size=2**20) as ws:
                call.opened_at = time.time()
                queue_until = [0.0]
                reader = asyncio.create_task(
                    self._read(ws, stream, call, codec, rate, queue_until, callback)
                )
                step = 0.02 / self.speed
                began = time.monotonic()
                call.media_began = time.time()
                n = 0
                for line in messages(audio, codec, with_stop=False):
                    doc = json.loads(line)
                    if doc["event"] == "media":
                        chunk = doc["media"]["chunk"]
                        if (
                            call.faults.disconnect_at is not None
                            and chunk > call.faults.disconnect_at
                        ):
                            ws.transport.abort()  # an abrupt close: no stop, no close frame
                            break
                        if doc["media"]["track"] == wanted[0]:
                            n += 1
                            delay = began + n * step - time.monotonic()
                            if delay > 0:
                                await asyncio.sleep(delay)
                        call.frames_sent += 1
                    await ws.send(line)
                else:
                    if not call.faults.omit_stop:
                        await ws.send(
                            json.dumps(
                                {
                                    "event": "stop",
                                    "sequenceNumber": call.frames_sent + 1,
                                    "streamId": stream.stream_id,
                                }
                            )
                        )
                    await asyncio.sleep(0.3)
                reader.cancel()
        except (OSError, ConnectionClosed) as error:
            call.error = str(error)
        finally:
            stream.state = "stopped"
            ends = (
                ["StopStream", "StartStream"] if call.faults.reorder_callbacks else ["StopStream"]
            )
            await self._callbacks(callback, stream, ends, call)
            call.done.set()

    async def _read(
        self,
        ws: Any,
        stream: ApiStream,
        call: SimCall,
        codec: str,
        rate: int,
        queue_until: list[float],
        callback: str | None,
    ) -> None:
        """Vobiz's side of talk-back: play queued audio, confirm checkpoints and clears."""
        pending: list[asyncio.Task[None]] = []
        async for raw in ws:
            msg = json.loads(raw)
            event = msg.get("event")
            now = time.monotonic()
            if event == "playAudio":
                media = msg["media"]
                payload = base64.b64decode(media["payload"])
                pcm = (
                    codecs.ulaw_decode(payload)
                    if "mulaw" in media["contentType"]
                    else codecs.l16_swap(payload)
                )
                if media["sampleRate"] != call.played_rate:
                    pcm = codecs.resample(pcm, media["sampleRate"], call.played_rate)
                call.played += pcm
                duration = len(pcm) / 2 / call.played_rate / self.speed
                queue_until[0] = max(queue_until[0], now) + duration
            elif event == "checkpoint":
                name = msg.get("name", "")
                wait = max(0.0, queue_until[0] - now)
                pending.append(
                    asyncio.create_task(self._played(ws, stream, name, wait, callback, call))
                )
            elif event == "clearAudio":
                for task in pending:
                    task.cancel()
                pending.clear()
                queue_until[0] = now
                await ws.send(json.dumps({"event": "clearedAudio", "streamId": stream.stream_id}))
                await self._callbacks(callback, stream, ["ClearedAudio"], call)

    async def _played(
        self,
        ws: Any,
        stream: ApiStream,
        name: str,
        wait: float,
        callback: str | None,
        call: SimCall,
    ) -> None:
        await asyncio.sleep(wait)
        await ws.send(
            json.dumps({"event": "playedStream", "streamId": stream.stream_id, "name": name})
        )
        await self._callbacks(callback, stream, ["PlayedStream"], call, name=name)

    # -- callbacks ------------------------------------------------------------------------

    async def _callbacks(
        self,
        url: str | None,
        stream: ApiStream,
        events: list[str],
        call: SimCall,
        name: str | None = None,
    ) -> None:
        if not url:
            return
        sends = list(events)
        if call.faults.duplicate_callbacks:
            sends = sends * 2
        for event in sends:
            params = {
                "Event": event,
                "StreamID": stream.stream_id,
                "CallUUID": stream.call_uuid,
                "Timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            if name:
                params["Name"] = name
            await asyncio.to_thread(self.send_callback, url, params)

    def send_callback(self, url: str, params: dict[str, str]) -> int:
        """POST one V3-signed, form-encoded callback; returns the HTTP status."""
        nonce = uuid.uuid4().hex
        message = signed_string("POST", url, params) + "." + nonce
        signature = base64.b64encode(
            hmac.new(self.auth_token.encode(), message.encode(), hashlib.sha256).digest()
        ).decode()
        self.signatures.append(signature)
        request = urllib.request.Request(  # noqa: S310 - a local URL
            url,
            data=urlencode(params).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Vobiz-Signature-V3": signature,
                "X-Vobiz-Signature-V3-Nonce": nonce,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


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
    args = parser.parse_args()
    sim = VobizSimulator(args.auth_id, args.auth_token, args.speed).start()
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
