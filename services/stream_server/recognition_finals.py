"""Whole-utterance decodes for the offline live recogniser, in a child process of the worker.

PocketSphinx holds the GIL while it decodes, and a 5 s line takes 1-2 s to decode here: in the
recognition worker's own process every other line's partials would wait that long
(:mod:`callstream.adapters.recognize_local`). The worker is a daemonic multiprocessing child,
which may not have children of its own through multiprocessing, so this is a plain subprocess
(``python -m stream_server.recognition_finals``) speaking length-prefixed MessagePack frames
over its stdin and stdout: ``[pcm, rate, language]`` in, the text out, one for one, in order.
Two threads move the frames, so the worker's loop never blocks on a pipe. When the worker dies
the child reads the end of its stdin and exits; when the child dies, the decodes waiting fail
(the recogniser then decodes them itself) and the next one starts a new child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from typing import IO

import msgspec

log = logging.getLogger("callstream.recognition")

_LENGTH = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()


def _write(stream: IO[bytes], message: object) -> None:
    body = _encoder.encode(message)
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


def _read(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


class FinalsProcess:
    """The worker's side: :meth:`submit` an utterance, get a future of its text."""

    def __init__(self, command: list[str] | None = None) -> None:
        """Nothing starts until the first :meth:`submit` (``command``: the child, for tests)."""
        self._command = command or [sys.executable, "-m", "stream_server.recognition_finals"]
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._waiting: deque[Future[str]] = deque()
        self._closed = False
        self.started = 0  # children started (a restart after one died counts)

    def submit(self, pcm: bytes, rate: int, language: str) -> Future[str]:
        """The utterance's text, when decoded (in the order submitted).

        Raises:
            RuntimeError: shut down.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the finals process is shut down")
            if self._child is None or self._child.poll() is not None:
                self._start()
            future: Future[str] = Future()
            self._waiting.append(future)
            self._outbox.put(_encoder.encode([pcm, rate, language]))
        return future

    def shutdown(self) -> None:
        """Stop the child; what waits fails."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
            self._outbox.put(None)
        if child is not None:
            with contextlib.suppress(OSError):
                child.kill()
            child.wait(5)  # its receiver reads the end of its stdout and closes the pipes
        self._fail_waiting("shut down")

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        child = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self._child = child
        self.started += 1
        self._outbox = queue.Queue()
        threading.Thread(target=self._send, args=(child, self._outbox), daemon=True).start()
        threading.Thread(target=self._receive, args=(child, self._outbox), daemon=True).start()

    def _send(self, child: subprocess.Popen[bytes], outbox: queue.Queue[bytes | None]) -> None:
        assert child.stdin is not None
        while (body := outbox.get()) is not None:
            try:
                child.stdin.write(_LENGTH.pack(len(body)) + body)
                child.stdin.flush()
            except OSError:  # the child is gone: the receiver fails what waits
                break
        with contextlib.suppress(OSError):
            child.stdin.close()

    def _receive(self, child: subprocess.Popen[bytes], outbox: queue.Queue[bytes | None]) -> None:
        assert child.stdout is not None
        while (body := _read(child.stdout)) is not None:
            with self._lock:
                future = self._waiting.popleft() if self._waiting else None
            if future is not None:
                text, error = msgspec.msgpack.decode(body, type=tuple[str, str])
                if error:
                    future.set_exception(RuntimeError(error))
                else:
                    future.set_result(text)
        if not self._closed:
            log.warning("the finals process ended (exit %s)", child.wait(5))
        outbox.put(None)  # its sender stops and closes its stdin
        child.stdout.close()
        with self._lock:
            if self._child is child:
                self._child = None  # the next submit starts another
        self._fail_waiting("the finals process ended")

    def _fail_waiting(self, why: str) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, deque()
        for future in waiting:
            if not future.done():
                future.set_exception(RuntimeError(why))


def main() -> None:
    """The child: decode each utterance it is sent, answer its text (or the error)."""
    from callstream.wiring import offline_transcriber

    transcriber = offline_transcriber()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (body := _read(stdin)) is not None:
        pcm, rate, language = msgspec.msgpack.decode(body, type=tuple[bytes, int, str])
        try:
            answer = (transcriber.transcribe(pcm, rate, language).text, "")
        except Exception as error:  # a bad rate, say: this one fails, the next is decoded
            answer = ("", f"{type(error).__name__}: {error}")
        _write(stdout, answer)


if __name__ == "__main__":
    main()
