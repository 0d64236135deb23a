"""The recognition worker: a process of its own beside the ingest loop, a recogniser per track.

The stream server spawns it (:mod:`stream_server.recognition`) and talks to it over one socket
pair (:mod:`stream_server.recognition_wire`). Recognition is CPU the ingest loop must never wait
for (PocketSphinx decodes at about half real time per speaking track), so it runs here: when it
falls behind, its results come late, and the calls' audio is not held up. The loop is plain
blocking I/O: read a frame, hand it to its track's recogniser, send back what it heard.
"""

from __future__ import annotations

import logging
import signal
import socket

from callstream.exceptions import CallstreamError, ConfigError
from callstream.ports import LiveRecognizer, LiveRecognizers, LiveResult
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


def serve(sock: socket.socket, recognizers: LiveRecognizers) -> None:
    """Answer the server on ``sock`` until it closes its end."""
    reader: FrameReader[ToWorker] = FrameReader(ToWorker)
    live: dict[tuple[str, str], LiveRecognizer] = {}
    while True:
        data = sock.recv(256 * 1024)
        if not data:
            return  # the server is gone (or restarted us): nothing to finish for anyone
        for message in reader.feed(data):
            key = (message.key, message.track)
            match message:
                case Open(rate=rate, language=language):
                    try:
                        live[key] = recognizers(message.key, message.track, rate, language)
                    except CallstreamError as error:  # a rate it cannot take: that track only
                        log.warning("recognition of %s refused: %s", key, error.message)
                case Audio(start_sample=start, pcm=pcm):
                    recognizer = live.get(key)
                    if recognizer is not None:
                        recognizer.feed(pcm, start)
                        _send(sock, message.key, message.track, recognizer.results_ready())
                case Close():
                    recognizer = live.pop(key, None)
                    if recognizer is not None:
                        _send(sock, message.key, message.track, recognizer.close())
                    sock.sendall(frame(Closed(message.key, message.track)))


def _send(sock: socket.socket, key: str, track: str, results: list[LiveResult]) -> None:
    if results:
        sock.sendall(frame(Heard(key, track, results)))


def live_recognizers(backend: str) -> LiveRecognizers:
    """The recognisers a worker opens per track: ``local`` is PocketSphinx (recognize_local).

    Raises:
        ConfigError: a backend that is not built (``aws``: Amazon Transcribe streaming, next).
    """
    if backend != "local":
        raise ConfigError(f"live recognition backend {backend!r}: only local is built")
    from callstream import settings
    from callstream.adapters.recognize_local import DecoderPool, PocketSphinxLive
    from callstream.wiring import offline_transcriber

    limits = settings.load(settings.AudioSettings).limits()
    pool, finals = DecoderPool(), offline_transcriber()

    def recognizer(key: str, track: str, rate: int, language: str) -> LiveRecognizer:
        return PocketSphinxLive(track, rate, limits, pool, finals, language=language)

    return recognizer


def main(sock: socket.socket, backend: str) -> None:
    """The worker process's entry point, and its composition root."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us, not a terminal's ^C
    serve(sock, live_recognizers(backend))
