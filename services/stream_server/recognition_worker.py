"""The recognition worker: a process of its own beside the ingest loop, a recogniser per track.

The stream server spawns it (:mod:`stream_server.recognition`) and talks to it over one socket
pair (:mod:`stream_server.recognition_wire`). Recognition is CPU (PocketSphinx decodes at about
half real time per speaking track) or network (Transcribe streaming: a session per call) the
ingest loop must never wait for, so it runs here: when it falls behind, its results come late,
and the calls' audio is not held up.

The loop is asyncio: read frames and hand each to its track's recogniser; send back what the
recognisers heard, whether the audio made it (PocketSphinx) or the network brought it
(Transcribe: ``notify``); a track is :class:`Closed` once its recogniser is finished, after the
server closed it or when the recogniser gave it up (``reason``: the quota, say).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

from callstream.exceptions import CallstreamError, ConfigError
from callstream.ports import LiveRecognizer, LiveRecognizers, LiveResult, TrackToHear
from stream_server.recognition_wire import (
    Audio,
    Close,
    Closed,
    FrameReader,
    Heard,
    Open,
    ToWorker,
    frame,
)

log = logging.getLogger("callstream.recognition")

Key = tuple[str, str]  # (connection key, track)


class _Tracks:
    """The worker's open tracks, and which have something to say."""

    def __init__(self, recognizers: LiveRecognizers) -> None:
        self._recognizers = recognizers
        self.live: dict[Key, LiveRecognizer] = {}
        self.closing: set[Key] = set()
        self.dirty: set[Key] = set()
        self.last: dict[Key, list[LiveResult]] = {}  # what close() returned, to send
        self.wake = asyncio.Event()

    def handle(self, message: ToWorker) -> None:
        key = (message.key, message.track)
        match message:
            case Open(rate=rate, language=language, together=together):
                try:
                    self.live[key] = self._recognizers(
                        TrackToHear(message.key, message.track, rate, language, together),
                        self._notifier(key),
                    )
                except CallstreamError as error:  # a rate it cannot take: that track only
                    log.warning("recognition of %s refused: %s", key, error.message)
            case Audio(start_sample=start, pcm=pcm):
                recognizer = self.live.get(key)
                if recognizer is not None:
                    recognizer.feed(pcm, start)
                    self.dirty.add(key)
            case Close():
                self.closing.add(key)
                self.dirty.add(key)
                recognizer = self.live.get(key)
                if recognizer is not None:
                    # what its audio made first, then its finals: in the order they were heard
                    self.last[key] = [*recognizer.results_ready(), *recognizer.close()]

    def _notifier(self, key: Key) -> Callable[[], None]:
        def notify() -> None:
            self.dirty.add(key)
            self.wake.set()

        return notify

    def said(self) -> bytes:
        """What the dirty tracks have to say, as frames."""
        out = bytearray()
        dirty, self.dirty = self.dirty, set()
        for key in dirty:  # a track's results in order; tracks in any order
            recognizer = self.live.get(key)
            if recognizer is not None:
                results = self.last.pop(key, []) + recognizer.results_ready()
                if results:
                    out += frame(Heard(key[0], key[1], results))
                if not recognizer.finished:
                    continue
                del self.live[key]
                if recognizer.refused or key not in self.closing:  # given up: it falls back
                    self.closing.discard(key)
                    out += frame(Closed(key[0], key[1], recognizer.refused or "gave up"))
                    continue
            if key in self.closing:
                self.closing.discard(key)
                out += frame(Closed(key[0], key[1]))
        return bytes(out)


async def serve(sock: socket.socket, recognizers: LiveRecognizers) -> None:
    """Answer the server on ``sock`` until it closes its end."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    reader: FrameReader[ToWorker] = FrameReader(ToWorker)
    tracks = _Tracks(recognizers)
    receiving: asyncio.Task[bytes] | None = None
    while True:
        if receiving is None:
            receiving = loop.create_task(loop.sock_recv(sock, 256 * 1024))
        waking = loop.create_task(tracks.wake.wait())
        await asyncio.wait({receiving, waking}, return_when=asyncio.FIRST_COMPLETED)
        waking.cancel()
        tracks.wake.clear()
        if receiving.done():
            data = receiving.result()
            receiving = None
            if not data:
                return  # the server is gone (or restarted us): nothing to finish for anyone
            for message in reader.feed(data):
                tracks.handle(message)
        said = tracks.said()
        if said:
            await loop.sock_sendall(sock, said)


def live_recognizers(backend: str) -> LiveRecognizers:
    """The recognisers a worker opens per track (its composition root's part).

    ``local`` is PocketSphinx (recognize_local); ``aws`` is Amazon Transcribe streaming
    (recognize_transcribe), a stereo session per two-track call, credentials from the task's
    role.

    Raises:
        ConfigError: an unknown backend, or ``aws`` without a region or credentials.
    """
    if backend == "local":
        return _local()
    if backend == "aws":
        return _aws()
    raise ConfigError(f"live recognition backend {backend!r}: local or aws")


def _local() -> LiveRecognizers:
    from callstream import settings
    from callstream.adapters.recognize_local import DecoderPool, PocketSphinxLive
    from callstream.wiring import offline_transcriber
    from stream_server.recognition_finals import FinalsProcess

    limits = settings.load(settings.AudioSettings).limits()
    pool, finals = DecoderPool(), offline_transcriber()
    background = FinalsProcess()  # whole decodes in a child, beside the partials

    def recognizer(hear: TrackToHear, notify: Callable[[], None]) -> LiveRecognizer:
        return PocketSphinxLive(
            hear.track,
            hear.rate,
            limits,
            pool,
            finals,
            language=hear.language,
            background=background,
            notify=notify,
        )

    return recognizer


def _aws() -> LiveRecognizers:
    import botocore.session
    from picows.websockets.asyncio.client import connect

    from callstream import settings
    from callstream.adapters.recognize_transcribe import Connection, TranscribeCall
    from callstream.adapters.transcribe_wire import StreamOptions, presigned_url

    cfg = settings.load(settings.TranscribeSettings)
    session = botocore.session.get_session()
    region = cfg.transcribe_region or session.get_config_variable("region")
    credentials = session.get_credentials()
    if not region or credentials is None:
        raise ConfigError("live_transcription=aws needs a region and credentials (the task role)")

    async def open_session(options: StreamOptions) -> Connection:
        url = presigned_url(  # per session: a URL lives 300 s, role credentials rotate
            credentials.get_frozen_credentials(), region, options, base=cfg.transcribe_endpoint
        )
        return await connect(url, compression=None, open_timeout=5, max_size=1024 * 1024)

    calls: dict[str, TranscribeCall] = {}  # stereo calls whose second track is still to open

    def recognizer(hear: TrackToHear, notify: Callable[[], None]) -> LiveRecognizer:
        # a stream's two tracks are one stereo session (billed once, one stream of the quota)
        stereo = len(hear.together) == 2 and hear.track in hear.together
        for key in [k for k, c in calls.items() if c.finished]:  # its other track never came
            del calls[key]
        call = calls.pop(hear.key, None) if stereo else None
        if call is None or hear.track not in call.tracks:
            call = TranscribeCall(
                hear.together if stereo else (hear.track,),
                hear.rate,
                StreamOptions(
                    language=hear.language,
                    sample_rate=hear.rate,
                    vocabulary=cfg.transcribe_vocabulary,
                    redact_pii=cfg.transcribe_redact_pii,
                ),
                open_session,
                rotate_after_s=cfg.transcribe_rotate_after_s,
            )
            if stereo:
                calls[hear.key] = call  # its other track opens next
        track = call.track(hear.track)
        track.notify = notify
        return track

    return recognizer


def main(sock: socket.socket, backend: str) -> None:
    """The worker process's entry point, and its composition root."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us, not a terminal's ^C
    recognizers = live_recognizers(backend)
    asyncio.run(serve(sock, recognizers))
