"""The live-recognition seam with a fake recogniser: the wire, the client's chunks, outbox,
restarts and replay, and one call's transcript records. The worker runs the real ``serve`` loop
on a real socket pair, in a thread standing in for its process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable

import pytest

from callstream.audio import records
from callstream.audio.records import TranscriptRecord, UtteranceRecord
from callstream.exceptions import RecordError
from callstream.ports import LiveRecognizer, LiveResult, TrackToHear
from stream_server.live_transcript import LiveTranscript
from stream_server.recognition import MAX_RESTARTS, Recognition
from stream_server.recognition_wire import (
    Audio,
    Close,
    FrameReader,
    FromWorker,
    Heard,
    Open,
    ToWorker,
    frame,
)
from stream_server.recognition_worker import serve

RATE = 8000


# -- the wire ---------------------------------------------------------------------------------


def test_frames_split_anywhere_read_back_whole_and_in_order() -> None:
    sent = [
        Open("k", "inbound", RATE, "en-US"),
        Audio("k", "inbound", 160, bytes(range(256)) * 7),
        Close("k", "inbound"),
    ]
    data = b"".join(frame(m) for m in sent)
    for step in (1, 3, 7, 64, len(data)):
        reader: FrameReader[ToWorker] = FrameReader(ToWorker)
        got = [m for i in range(0, len(data), step) for m in reader.feed(data[i : i + step])]
        assert got == sent


def test_a_frame_too_long_or_not_a_message_is_refused_precisely() -> None:
    reader: FrameReader[FromWorker] = FrameReader(FromWorker, max_frame=100)
    with pytest.raises(RecordError, match="frame of 101 bytes"):
        reader.feed((101).to_bytes(4, "big"))
    reader = FrameReader(FromWorker)
    with pytest.raises(RecordError, match="invalid recognition message"):
        reader.feed((3).to_bytes(4, "big") + b"\x93\x01\x02")


# -- a fake recogniser, and the worker in a thread --------------------------------------------


class Counting:
    """Hears every 100 ms of audio as a word (a partial); a final at each 1 s of the track."""

    def __init__(self, track: str) -> None:
        self.track = track
        self.heard: list[int] = []
        self._out: list[LiveResult] = []
        self.finished = False
        self.refused: str | None = None

    def feed(self, pcm: bytes, start_sample: int) -> None:
        self.heard.append(start_sample)
        end = start_sample + len(pcm) // 2
        line = start_sample // RATE * RATE
        self._out.append(LiveResult(f"{self.track}-{line}", False, "w", line, end))
        if end % RATE == 0:
            self._out.append(LiveResult(f"{self.track}-{line}", True, "line", line, end))

    def results_ready(self) -> list[LiveResult]:
        out, self._out = self._out, []
        return out

    def close(self) -> list[LiveResult]:
        self.finished = True
        return [LiveResult(f"{self.track}-end", True, "last", 0, 0)]


class ThreadWorker:
    """A worker 'process': the real serve loop on its socket, in a thread; kill closes it."""

    instances: list[ThreadWorker] = []

    def __init__(self, sock: socket.socket, reading: bool = True) -> None:
        self.sock = sock.dup()
        self.recognizers: dict[str, Counting] = {}
        self.reading = reading
        self.killed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        ThreadWorker.instances.append(self)

    def _run(self) -> None:
        if not self.reading:  # a worker that hangs: never reads, until it is killed
            self.killed.wait()
            self.sock.close()
            return

        def make(hear: TrackToHear, notify: Callable[[], None]) -> LiveRecognizer:
            self.recognizers[hear.track] = Counting(hear.track)
            return self.recognizers[hear.track]

        try:
            asyncio.run(serve(self.sock, make))
        except OSError:
            pass
        finally:
            self.sock.close()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def kill(self) -> None:
        self.killed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


class Ear:
    def __init__(self) -> None:
        self.heard: list[tuple[str, LiveResult]] = []
        self.closed: list[str] = []

    def on_heard(self, key: str, track: str, results: list[LiveResult]) -> None:
        self.heard += [(track, r) for r in results]

    def on_closed(self, key: str, track: str) -> None:
        self.closed.append(track)


async def until(predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def hearing() -> tuple[Recognition, Ear]:
    """A started Recognition on thread workers, with one track open (from a running loop)."""
    ThreadWorker.instances.clear()
    ear = Ear()
    rec = Recognition(ThreadWorker, ear.on_heard, on_closed=ear.on_closed)
    rec.start()
    rec.open("k", "inbound", RATE, "en-US")
    return rec, ear


async def kill_until_given_up(rec: Recognition) -> None:
    """Kill each worker as it comes, until the seam stops spawning them."""
    for restart in range(1, MAX_RESTARTS + 2):
        await until(lambda n=restart: len(ThreadWorker.instances) == n)
        ThreadWorker.instances[-1].kill()
        await until(lambda n=restart: rec.stats.restarts == n or rec.stats.gave_up)


def frames(seconds: float, first: int = 0) -> list[tuple[int, bytes]]:
    """20 ms frames of a track from sample ``first``."""
    step = RATE // 50
    return [(first + i * step, bytes(2 * step)) for i in range(int(seconds * 50))]


def test_audio_goes_in_100_ms_chunks_and_results_come_back_in_order() -> None:
    async def run() -> None:
        rec, ear = hearing()
        for start, pcm in frames(2.0):
            rec.feed("k", "inbound", start, pcm)
        rec.close("k", "inbound")
        await until(lambda: ear.closed == ["inbound"])
        (worker,) = ThreadWorker.instances
        assert worker.recognizers["inbound"].heard == list(range(0, 2 * RATE, RATE // 10))
        finals = [r.text for _, r in ear.heard if r.final]
        assert finals == ["line", "line", "last"], "the close's final comes last"
        assert rec.stats.sent_ms == pytest.approx(2000) and rec.stats.dropped_ms == 0
        await rec.stop()

    asyncio.run(run())


def test_a_gap_ends_a_chunk_so_a_chunk_holds_consecutive_audio_only() -> None:
    async def run() -> None:
        rec, ear = hearing()
        for start, pcm in frames(0.04) + frames(0.1, first=RATE):
            rec.feed("k", "inbound", start, pcm)
        rec.close("k", "inbound")
        await until(lambda: ear.closed == ["inbound"])
        assert ThreadWorker.instances[0].recognizers["inbound"].heard == [0, RATE]
        await rec.stop()

    asyncio.run(run())


def test_a_dead_worker_is_replaced_and_hears_again_from_the_last_final() -> None:
    async def run() -> None:
        rec, ear = hearing()
        for start, pcm in frames(1.5):  # a final at 1 s; 0.5 s heard since
            rec.feed("k", "inbound", start, pcm)
        await until(lambda: any(r.final for _, r in ear.heard))
        await until(lambda: len(ThreadWorker.instances[0].recognizers["inbound"].heard) == 15)
        ThreadWorker.instances[0].kill()
        await until(lambda: rec.stats.restarts == 1)
        second = ThreadWorker.instances[1]
        await until(lambda: len(second.recognizers.get("inbound", Counting("x")).heard) == 5)
        assert second.recognizers["inbound"].heard == list(range(RATE, RATE * 3 // 2, RATE // 10))
        for start, pcm in frames(0.5, first=RATE * 3 // 2):
            rec.feed("k", "inbound", start, pcm)
        rec.close("k", "inbound")
        await until(lambda: ear.closed == ["inbound"])
        finals = [r.result_id for _, r in ear.heard if r.final]
        assert finals == ["inbound-0", "inbound-8000", "inbound-end"], "none lost, none doubled"
        await rec.stop()

    asyncio.run(run())


def test_a_worker_that_keeps_dying_is_given_up_on_and_its_tracks_are_closed() -> None:
    async def run() -> None:
        rec, ear = hearing()
        await kill_until_given_up(rec)
        assert rec.stats.gave_up and not rec.running and ear.closed == ["inbound"]
        rec.feed("k", "inbound", 0, bytes(320))  # nothing is sent, nothing raises
        await rec.stop()

    asyncio.run(run())


def test_a_worker_that_does_not_read_costs_a_bounded_outbox_and_never_blocks_the_loop() -> None:
    async def run() -> None:
        ear = Ear()
        rec = Recognition(
            lambda sock: ThreadWorker(sock, reading=False), ear.on_heard, max_outbox=64 * 1024
        )
        rec.start()
        rec.open("k", "inbound", RATE, "en-US")
        for start, pcm in frames(120.0):  # two minutes of audio, at once
            rec.feed("k", "inbound", start, pcm)
        assert len(rec._outbox) <= 64 * 1024
        assert rec.stats.dropped_ms > 60_000 and rec.stats.sent_ms + rec.stats.dropped_ms == (
            pytest.approx(120_000)
        )
        await rec.stop()

    asyncio.run(run())


# -- one call's transcript --------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.together: dict[str, tuple[str, ...]] = {}

    def open(
        self, key: str, track: str, rate: int, language: str, together: tuple[str, ...] = ()
    ) -> None:
        self.calls.append(("open", track, language))
        self.together[track] = together

    def feed(self, key: str, track: str, start_sample: int, pcm: bytes) -> None:
        self.calls.append(("feed", track))

    def close(self, key: str, track: str) -> None:
        self.calls.append(("close", track))


def utterance(track: str, start: int, end: int, index: int = 0) -> UtteranceRecord:
    return UtteranceRecord(
        stream_id="s-1",
        track=track,  # type: ignore[arg-type]
        index=index,
        live=True,
        sample_rate=RATE,
        start_sample=start,
        end_sample=end,
        payload=bytes(2 * (end - start)),
    )


def made(transcript: LiveTranscript) -> list[TranscriptRecord]:
    out = [records.decode(data) for data in transcript.records_ready()]
    assert all(isinstance(r, TranscriptRecord) for r in out)
    return out  # type: ignore[return-value]


def test_a_line_grows_is_provisional_at_the_vad_end_and_final_when_the_recogniser_says() -> None:
    recorder = Recorder()
    transcript = LiveTranscript(recorder, "k", "hi-IN", lambda: 5.0)
    transcript.start("s-1", "c-1", RATE, ("inbound",))
    transcript.audio("inbound", bytes(320), 0)
    transcript.heard("inbound", [LiveResult("L1", False, "hello", 800, 4000)])
    transcript.heard("inbound", [LiveResult("L1", False, "hello there", 800, 8000)])
    transcript.utterance_ended(utterance("inbound", 800, 9600))
    transcript.heard("inbound", [LiveResult("L1", True, "hello there friend", 800, 9600)])
    out = made(transcript)
    assert [(r.kind, r.text) for r in out] == [
        ("partial", "hello"),
        ("partial", "hello there"),
        ("provisional", "hello there"),
        ("final", "hello there friend"),
    ]
    assert {r.result_id for r in out} == {"L1"} and out[2].end_ms == 1200.0
    assert out[0].start_ms == 100.0 and out[0].call_uuid == "c-1" and out[0].received_at == 5.0
    assert recorder.calls[:2] == [("open", "inbound", "hi-IN"), ("feed", "inbound")]


def test_what_the_server_makes_of_a_line_the_consumer_publishes_as_the_console_expects() -> None:
    """Across the seam with the real records: the server's partial, provisional and final of a
    line become Transcript Partial, then Utterance Transcribed provisional, then final (the
    provisional naming its utterance, as the console and sentiment's rule need)."""
    from callstream.analytics import transcripts
    from callstream.ports import RecordAt
    from tests.unit.test_analytics_consumers import transcribing

    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", "c-1", RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("L1", False, "hello there", 800, 8000)])
    transcript.utterance_ended(utterance("inbound", 800, 9600, 4))
    transcript.heard("inbound", [LiveResult("L1", True, "hello there friend", 800, 9600)])
    svc, _, _, bus = transcribing()
    for record in transcript.records_ready():
        transcripts.handle(svc, record, RecordAt("shardId-0", "1"))
    said = [(kind, d.get("kind"), d.get("utterance"), d["text"]) for kind, d in bus.published]
    assert said == [
        ("Transcript Partial", None, None, "hello there"),
        ("Utterance Transcribed", "provisional", "inbound#000000004", "hello there"),
        ("Utterance Transcribed", "final", "inbound#000000004", "hello there friend"),
    ]


def test_a_final_before_the_vad_end_leaves_nothing_provisional() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("L1", False, "hi", 0, 800)])
    transcript.heard("inbound", [LiveResult("L1", True, "hi", 0, 1600)])
    transcript.utterance_ended(utterance("inbound", 0, 1600))
    assert [r.kind for r in made(transcript)] == ["partial", "final"]


def test_a_track_start_did_not_announce_is_opened_when_its_audio_comes() -> None:
    recorder = Recorder()
    transcript = LiveTranscript(recorder, "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.audio("outbound", bytes(320), 0)
    transcript.close()
    assert ("open", "outbound", "en-US") in recorder.calls
    assert sorted(c for c in recorder.calls if c[0] == "close") == [
        ("close", "inbound"),
        ("close", "outbound"),
    ]
    assert not transcript.finished
    transcript.track_closed("inbound")
    transcript.track_closed("outbound")
    assert transcript.finished


def test_results_cross_the_wire_as_the_ports_values() -> None:
    heard = Heard("k", "inbound", [LiveResult("L", True, "text", 1, 2, 0.5)])
    reader: FrameReader[FromWorker] = FrameReader(FromWorker)
    assert reader.feed(frame(heard)) == [heard]


def test_a_pool_keeps_a_calls_tracks_on_one_worker_and_spreads_calls_over_the_workers() -> None:
    from stream_server.recognition import RecognitionPool

    async def run() -> None:
        ThreadWorker.instances.clear()
        ear = Ear()
        pool = RecognitionPool(ThreadWorker, ear.on_heard, on_closed=ear.on_closed, workers=2)
        pool.start()
        for key in ("a", "b"):
            for track in ("inbound", "outbound"):
                pool.open(key, track, RATE, "en-US")
                for start, pcm in frames(0.2):
                    pool.feed(key, track, start, pcm)
                pool.close(key, track)
        await until(lambda: len(ear.closed) == 4)
        heard = [sorted(w.recognizers) for w in ThreadWorker.instances]
        assert heard == [["inbound", "outbound"], ["inbound", "outbound"]], "one call a worker"
        assert pool.stats.sent_ms == pytest.approx(800) and pool._routes == {}
        await pool.stop()

    asyncio.run(run())


def test_a_final_names_the_utterance_it_transcribes() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    first, second = utterance("inbound", 0, 1600, 4), utterance("inbound", 4000, 8000, 5)
    transcript.utterance_ended(first)
    transcript.utterance_ended(second)
    transcript.heard("inbound", [LiveResult("L1", True, "one", 0, 1600)])
    transcript.heard("inbound", [LiveResult("L2", True, "two", 4000, 8000)])
    out = made(transcript)
    assert [(r.text, r.utterance_index) for r in out] == [("one", 4), ("two", 5)]
    transcript.track_closed("inbound")
    assert transcript.records_ready() == [], "every utterance had its final: nothing falls back"


def test_an_utterance_left_without_a_final_goes_to_the_per_utterance_path_unmarked() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.utterance_ended(utterance("inbound", 0, 1600, 0))
    transcript.track_closed("inbound")  # the worker was given up on, or the call ended
    transcript.utterance_ended(utterance("inbound", 4000, 8000, 1))  # after: at once
    back = [records.decode(data) for data in transcript.records_ready()]
    assert [(type(r).__name__, r.index, r.live) for r in back] == [  # type: ignore[union-attr]
        ("UtteranceRecord", 0, False),
        ("UtteranceRecord", 1, False),
    ]


def test_a_worker_far_behind_holds_a_bounded_number_of_utterances() -> None:
    from stream_server.live_transcript import MAX_PENDING

    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    for i in range(MAX_PENDING + 3):
        transcript.utterance_ended(utterance("inbound", i * 1000, i * 1000 + 800, i))
    back = [records.decode(data) for data in transcript.records_ready()]
    assert [r.index for r in back] == [0, 1, 2]  # type: ignore[union-attr]
    assert len(transcript._tracks["inbound"].pending) == MAX_PENDING


def test_the_container_refuses_a_local_recogniser_it_cannot_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image ships no PocketSphinx: a task told to use it fails at start, saying why,
    instead of a worker that dies five times and takes live recognition off."""
    import importlib.util

    from callstream.exceptions import ConfigError
    from callstream.settings import ServerSettings
    from stream_server import wiring

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pocketsphinx" else real(name, *a),
    )
    cfg = ServerSettings(
        audio_stream="a",
        utterance_stream="u",
        registry_table="r",
        nonce_table="n",
        live_transcription="local",
    )
    with pytest.raises(ConfigError, match="needs pocketsphinx"):
        wiring.build_server(cfg, kinesis=object(), dynamodb=object(), token_key=b"k" * 32)


def test_after_recognition_is_given_up_on_a_new_call_goes_straight_to_the_per_utterance_path() -> (
    None
):
    async def run() -> None:
        rec, _ = hearing()
        await kill_until_given_up(rec)
        assert rec.stats.gave_up
        transcript = LiveTranscript(rec, "k2", "en-US", lambda: 0.0)
        rec._on_closed = lambda key, track: transcript.track_closed(track)
        transcript.start("s-2", None, RATE, ("inbound",))
        assert transcript.finished, "no worker: the track is over at once"
        transcript.audio("inbound", bytes(320), 0)  # not opened again, nothing sent
        transcript.utterance_ended(utterance("inbound", 0, 800, 0))
        (back,) = [records.decode(d) for d in transcript.records_ready()]
        assert isinstance(back, UtteranceRecord) and not back.live
        await rec.stop()

    asyncio.run(run())


def test_a_worker_a_line_behind_makes_no_provisional_final_for_the_wrong_utterance() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("L1", False, "first", 0, 800)])
    transcript.utterance_ended(utterance("inbound", 0, 1600, 0))  # L1's: provisional
    transcript.heard("inbound", [LiveResult("L1", False, "first line", 0, 1200)])
    transcript.utterance_ended(utterance("inbound", 4000, 8000, 1))  # still hearing L1
    kinds = [(r.kind, r.result_id, r.text) for r in made(transcript)]
    assert kinds == [
        ("partial", "L1", "first"),
        ("provisional", "L1", "first"),
        ("partial", "L1", "first line"),
    ], "the second utterance gets no provisional made of the first line"


# -- a recogniser that cuts its lines elsewhere than our VAD (Transcribe) -----------------------


def finals_of(out: list[TranscriptRecord]) -> list[tuple[int | None, str]]:
    return [(r.utterance_index, r.text) for r in out if r.kind == "final"]


def test_two_lines_inside_one_utterance_settle_as_one_final_that_replaces_both() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("A", False, "good", 0, 800)])
    transcript.heard("inbound", [LiveResult("A", True, "good morning", 0, 2400)])
    transcript.heard("inbound", [LiveResult("B", False, "how are", 4000, 5600)])
    transcript.utterance_ended(utterance("inbound", 0, 7200, 0))  # B still open: provisional
    transcript.heard("inbound", [LiveResult("B", True, "how are you", 4000, 6800)])
    out = made(transcript)
    provisional = next(r for r in out if r.kind == "provisional")
    assert provisional.text == "good morning how are"
    (final,) = [r for r in out if r.kind == "final"]
    assert (final.utterance_index, final.text) == (0, "good morning how are you")
    assert final.result_id == provisional.result_id == "A" and final.settles == ("B",)
    transcript.track_closed("inbound")
    assert transcript.records_ready() == [], "settled: nothing goes per utterance"


def test_one_line_across_two_utterances_is_heard_once_and_neither_goes_per_utterance() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("A", False, "yes", 0, 1600)])
    transcript.utterance_ended(utterance("inbound", 0, 4000, 0))
    transcript.heard("inbound", [LiveResult("A", False, "yes I can hear", 0, 6000)])
    transcript.utterance_ended(utterance("inbound", 4800, 8000, 1))
    transcript.heard("inbound", [LiveResult("A", True, "yes I can hear you", 0, 7600)])
    out = made(transcript)
    assert finals_of(out) == [(0, "yes I can hear you"), (1, "")]
    transcript.track_closed("inbound")
    assert transcript.records_ready() == []


def test_a_final_says_when_its_utterance_was_cut_at_the_longest_utterance() -> None:
    import msgspec

    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    cut = msgspec.structs.replace(utterance("inbound", 0, 8000, 0), split=True)
    transcript.utterance_ended(cut)
    transcript.heard("inbound", [LiveResult("A", True, "a long line", 0, 8000)])
    (final,) = [r for r in made(transcript) if r.kind == "final"]
    assert final.split and final.utterance_index == 0


def test_a_final_before_the_vad_closes_its_utterance_waits_for_it() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("A", True, "hello", 800, 4000)])
    assert made(transcript) == [], "no utterance to name yet"
    transcript.utterance_ended(utterance("inbound", 800, 6400, 3))
    out = made(transcript)
    assert [(r.kind, r.utterance_index, r.text) for r in out] == [("final", 3, "hello")]


def test_a_restarted_recognisers_new_line_over_an_open_one_hears_its_words_once() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("s1-A", False, "call me", 0, 1600)])
    # the session dropped mid-line; the new one replays from the last final and says it anew
    transcript.heard("inbound", [LiveResult("s2-A", False, "call me back", 0, 3200)])
    transcript.utterance_ended(utterance("inbound", 0, 4000, 0))
    transcript.heard("inbound", [LiveResult("s2-A", True, "call me back", 0, 3600)])
    out = made(transcript)
    assert finals_of(out) == [(0, "call me back")]
    (final,) = [r for r in out if r.kind == "final"]
    assert "s1-A" in final.settles, "the abandoned line leaves the console"


def test_a_final_outside_every_utterance_is_published_unstored_once_a_later_one_passes() -> None:
    transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
    transcript.start("s-1", None, RATE, ("inbound",))
    transcript.heard("inbound", [LiveResult("A", True, "mm", 0, 800)])  # our VAD kept none
    transcript.utterance_ended(utterance("inbound", 4000, 8000, 0))
    transcript.heard("inbound", [LiveResult("B", True, "right", 4000, 7000)])
    out = made(transcript)
    assert finals_of(out) == [(None, "mm"), (0, "right")]


def test_results_in_any_cut_lose_no_word_and_double_none() -> None:
    """Whatever lines the recogniser cuts, each word it finalised is in exactly one stored final."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None)
    @given(
        words=st.lists(st.integers(1, 4), min_size=1, max_size=12),  # gaps before each word
        line_cuts=st.lists(st.booleans(), min_size=12, max_size=12),
        vad_cuts=st.lists(st.booleans(), min_size=12, max_size=12),
        lag=st.integers(0, 3),
    )
    def check(words: list[int], line_cuts: list[bool], vad_cuts: list[bool], lag: int) -> None:
        spans, t = [], 0
        for gap in words:
            t += gap * 800
            spans.append((t, t + 1600))
            t += 1600
        n = len(spans)
        line_of = [0]
        for i in range(1, n):
            line_of.append(line_of[-1] + (1 if line_cuts[i] else 0))
        utt_of = [0]
        for i in range(1, n):
            utt_of.append(utt_of[-1] + (1 if vad_cuts[i] else 0))
        # events in time order: a word's partial when said, a line's final `lag` words after
        # its last word, an utterance's end after its last word (VAD hangover)
        events: list[tuple[int, int, object]] = []
        for line in set(line_of):
            idx = [i for i in range(n) if line_of[i] == line]
            for k, i in enumerate(idx):
                text = " ".join(f"w{j}" for j in idx[: k + 1])
                events.append(
                    (
                        spans[i][1],
                        1,
                        LiveResult(f"L{line}", False, text, spans[idx[0]][0], spans[i][1]),
                    )
                )
            last = idx[-1]
            done = min(n - 1, last + lag)
            text = " ".join(f"w{j}" for j in idx)
            events.append(
                (
                    spans[done][1] + 1,
                    2,
                    LiveResult(f"L{line}", True, text, spans[idx[0]][0], spans[last][1]),
                )
            )
        for u in set(utt_of):
            idx = [i for i in range(n) if utt_of[i] == u]
            events.append(
                (
                    spans[idx[-1]][1] + 400,
                    0,
                    utterance("inbound", spans[idx[0]][0], spans[idx[-1]][1] + 400, u),
                )
            )
        events.sort(key=lambda e: (e[0], e[1]))
        transcript = LiveTranscript(Recorder(), "k", "en-US", lambda: 0.0)
        transcript.start("s-1", None, RATE, ("inbound",))
        for _, _, event in events:
            if isinstance(event, LiveResult):
                transcript.heard("inbound", [event])
            else:
                transcript.utterance_ended(event)  # type: ignore[arg-type]
        transcript.track_closed("inbound")
        out = [records.decode(d) for d in transcript.records_ready()]
        stored = [
            r
            for r in out
            if isinstance(r, TranscriptRecord)
            and r.kind == "final"
            and r.utterance_index is not None
        ]
        fell_back = [r for r in out if isinstance(r, UtteranceRecord)]
        assert not fell_back, "every utterance settled live"
        assert sorted(r.utterance_index for r in stored) == sorted(set(utt_of))  # type: ignore[type-var]
        said = [w for r in stored for w in r.text.split()]
        assert sorted(said) == sorted(f"w{i}" for i in range(n)), "each word once"
        assert [r.utterance_index for r in stored] == sorted(set(utt_of)), "in call order"

    check()
