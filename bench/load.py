"""Ingest capacity: N real-time Vobiz streams into one stream-server process on one core.

Run: .venv/bin/python -m bench.load --streams 250 500 1000 --seconds 20 [--codec mulaw|l16-16k]
     [--tracks 1|2] [--baseline] [--live]

* The server (``serve`` subcommand) is the real :class:`StreamServer` (parser, assembler, VAD,
  writer, registry hooks) pinned to core 0, with Kinesis replaced by an in-process sink whose
  ``PutRecords`` takes a realistic 20-40 ms. ``--baseline`` runs instead a bare ``websockets``
  server that only JSON-parses and base64-decodes each message (DESIGN.md §5's reference).
* The load generator (``generate``) runs in separate processes pinned to core 1. Each does one
  WebSocket handshake per stream and then, from a single ticker, writes pre-encoded masked frames
  straight to the sockets, so it costs far less than the server it measures; it reports its own
  CPU and how late its ticks ran. Its streams are spread over four 5 ms slots of each 20 ms
  period, as independent calls are (all in phase, every frame of every call would land in the
  same millisecond, a burst no real population of calls makes).
* ``--live`` turns live recognition's ingest side on: every frame decoded to PCM, chunked to
  100 ms and written to a worker process over the real socket pair (``Recognition``). The
  worker here reads and discards (PocketSphinx holds one call a core, not hundreds): what is
  measured is what live recognition costs the ingest loop, not the recogniser.
* Reported per step: frames sent and received (lost = the difference), p50/p99 lag from the
  moment a record's last frame was due to the record reaching the sink, server CPU share,
  server RSS and memory per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = b"bench-token-key-0123456789abcdef"
FRAME_S = 0.02
PHASES = 4


# --------------------------------------------------------------------------------- the server


class FakeKinesis:
    """PutRecords with realistic latency; records when each record was handed over.

    A stream's last record per track is closed by the ``stop`` message, not by a frame that was
    due, so its "lag" would measure how long the generator took to send ``stop``: those are
    left out (they were 1 in 14 records of a 15 s step, enough to own the p99).
    """

    def __init__(self) -> None:
        self.lags_ms: dict[tuple[str, str], list[float]] = {}
        self.records = 0
        self.lock = threading.Lock()

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        from callstream.audio import records

        handed = time.time()
        lags = []
        for record in Records:
            decoded = records.decode(record["Data"])
            if isinstance(decoded, records.AudioRecord):
                due = decoded.received_at + (decoded.frames - 1) * FRAME_S
                lags.append(((decoded.stream_id, decoded.track), (handed - due) * 1000))
        time.sleep(random.uniform(0.02, 0.04))
        with self.lock:
            for key, lag in lags:
                self.lags_ms.setdefault(key, []).append(lag)
            self.records += len(Records)
        return {
            "FailedRecordCount": 0,
            "Records": [{"SequenceNumber": "1", "ShardId": "s"}] * len(Records),
        }

    def steady_lags(self) -> list[float]:
        """Every lag but each track's last record (see the class docstring), sorted."""
        return sorted(lag for lags in self.lags_ms.values() for lag in lags[:-1])


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryLeases:
    """Token leases in memory (the bench's one server is the only holder)."""

    def __init__(self) -> None:
        self.generations: dict[str, int] = {}

    def acquire(self, token_id: str, holder: str, hold_s: float) -> Any:
        from callstream.ports import Lease

        self.generations[token_id] = self.generations.get(token_id, 0) + 1
        return Lease(generation=self.generations[token_id])

    def renew(self, token_id: str, holder: str, hold_s: float) -> bool:
        return True

    def release(self, token_id: str, holder: str, **where: Any) -> None:
        pass


class NullRegistry:
    def mark_started(self, *args: Any, **kwargs: Any) -> None:
        pass

    def mark_ended(self, *args: Any, **kwargs: Any) -> None:
        pass


def discard_worker(sock: Any) -> None:
    """A recognition worker that reads everything and answers nothing (``--live``)."""
    while sock.recv(1 << 20):
        pass


def spawn_discard_worker(sock: Any) -> Any:
    import multiprocessing

    worker = multiprocessing.get_context("spawn").Process(
        target=discard_worker, args=(sock,), daemon=True
    )
    worker.start()
    return worker


async def serve_callstream(port: int, ready: Path, live: bool = False) -> None:
    from callstream.audio.vad import Segmenter
    from callstream.settings import AudioSettings, ServerSettings
    from stream_server.protection import LocalProtection
    from stream_server.server import ServerServices, StreamServer
    from stream_server.tuning import Tuning
    from stream_server.wiring import grant_verifier

    kinesis = FakeKinesis()
    audio = AudioSettings().limits()
    services = ServerServices(
        put_records=kinesis.put_records,
        registry=NullRegistry(),
        leases=MemoryLeases(),
        verify_token=grant_verifier(KEY),
        authorize_control=lambda s, h: None,
        protection=LocalProtection(),
        segmenter_factory=lambda rate, track: Segmenter(rate, track, audio),
        recognition=spawn_discard_worker if live else None,
    )
    settings = ServerSettings(
        audio_stream="a",
        utterance_stream="u",
        registry_table="r",
        nonce_table="n",
        host="127.0.0.1",
        port=port,
        control_port=0,
    )
    server = StreamServer(settings, services, limits=audio, tuning=Tuning(metrics_interval_s=3600))
    await server.start()
    if not os.environ.get("BENCH_DEFAULT_GC"):
        from stream_server.__main__ import tune_gc

        tune_gc()  # as the production entry point does

    frames_done = 0

    def report(*_: Any) -> None:
        nonlocal frames_done
        frames_done = server.counters.frames + sum(
            s.assembler.stats.frames for s in server.sessions.values()
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    rss_idle = rss_mb()
    ready.write_text(str(server.port))
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    rss_samples: list[float] = []

    async def sample() -> None:  # memory over time: a soak must stay flat
        while True:
            await asyncio.sleep(10)
            rss_samples.append(round(rss_mb(), 1))

    stalls: list[float] = []

    async def loop_lag() -> None:  # how late the event loop runs a 10 ms timer: its stalls
        while True:
            began = time.monotonic()
            await asyncio.sleep(0.01)
            stalls.append((time.monotonic() - began - 0.01) * 1000)

    sampler = asyncio.create_task(sample())
    watcher = asyncio.create_task(loop_lag())
    await stop.wait()
    sampler.cancel()
    watcher.cancel()
    stalls.sort()
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    report()
    sessions = len(server.sessions)
    rss_loaded = rss_mb()
    await server.drain(deadline_s=10)
    lags = kinesis.steady_lags()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "frames": frames_done,
                "sessions_at_end": sessions,
                "cpu_share": cpu / wall,
                "rss_mb": usage.ru_maxrss / 1024,
                "rss_idle_mb": rss_idle,
                "rss_loaded_mb": rss_loaded,
                "rss_every_10s_mb": rss_samples,
                "lag_p50_ms": lags[len(lags) // 2] if lags else None,
                "lag_p99_ms": lags[int(len(lags) * 0.99)] if lags else None,
                "records": kinesis.records,
                "loop_late_p99_ms": stalls[int(len(stalls) * 0.99)] if stalls else None,
                "loop_late_max_ms": stalls[-1] if stalls else None,
            }
        ),
        flush=True,
    )


async def serve_baseline_picows(port: int, ready: Path) -> None:
    """The same bare reference on picows (callstream's transport): what the transport costs."""
    from picows import WSListener, WSMsgType, ws_create_server

    frames = 0

    class Bare(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            nonlocal frames
            if frame.msg_type is WSMsgType.TEXT:
                doc = json.loads(frame.get_payload_as_bytes())
                if doc.get("event") == "media":
                    base64.b64decode(doc["media"]["payload"])
                    frames += 1

    server = await ws_create_server(lambda request: Bare(), "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ready.write_text(str(server.sockets[0].getsockname()[1]))
    cpu0, wall0 = time.process_time(), time.monotonic()
    await stop.wait()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps({"frames": frames, "cpu_share": cpu / wall, "rss_mb": usage.ru_maxrss / 1024}),
        flush=True,
    )


async def serve_baseline(port: int, ready: Path) -> None:
    """The reference: receive, JSON-parse, base64-decode, nothing else (``websockets``)."""
    import logging

    from websockets.asyncio.server import serve

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # generators close abruptly
    frames = 0

    async def handler(ws: Any) -> None:
        nonlocal frames
        async for message in ws:
            doc = json.loads(message)
            if doc.get("event") == "media":
                base64.b64decode(doc["media"]["payload"])
                frames += 1

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=2**16) as server:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        ready.write_text(str(next(iter(server.sockets)).getsockname()[1]))
        cpu0, wall0 = time.process_time(), time.monotonic()
        await stop.wait()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps({"frames": frames, "cpu_share": cpu / wall, "rss_mb": usage.ru_maxrss / 1024}),
        flush=True,
    )


# ------------------------------------------------------------------------------ the generator


def ws_frame(text: bytes) -> bytes:
    """A masked client text frame with a zero mask (payload unchanged): pre-encodable."""
    n = len(text)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return header + b"\x00\x00\x00\x00" + text


async def answer_pings(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read what the server sends; answer its keepalive pings as any WebSocket client does."""
    try:
        while True:
            head = await reader.readexactly(2)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(length)
            if opcode == 0x9:  # ping → pong with the same payload (masked with a zero key)
                writer.write(
                    struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\x00\x00\x00\x00" + payload
                )
            elif opcode == 0x8:  # close
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        return


async def handshake(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in status.split(b"\r\n", 1)[0]:
        raise RuntimeError(status.split(b"\r\n", 1)[0].decode())
    return reader, writer


def call_payloads(codec: str, track: str) -> list[str]:
    """The shared support call's frames of one track, base64 on the wire format."""
    from callstream.audio import codecs
    from local.vobiz_frames import encode_frame, read_wav, to_wire_rate

    rate = 8000 if codec == "mulaw" else 16000
    audio = ROOT / "samples" / f"support_call_{rate}_{track}.wav"
    pcm, source_rate = read_wav(audio)
    pcm = to_wire_rate(pcm, source_rate, rate)
    size = rate // 50 * 2
    frames = [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
    assert codecs.frame_bytes("l16", rate) == size
    return [
        base64.b64encode(encode_frame(f, "mulaw" if codec == "mulaw" else "l16")).decode()
        for f in frames
    ]


async def generate(
    port: int,
    streams: int,
    seconds: float,
    codec: str,
    tracks: int,
    first: int,
    audio: str = "call",
) -> None:
    from callstream.control.tokens import TokenClaims, new_jti, sign_token

    rate = 8000 if codec == "mulaw" else 16000
    size = 160 if codec == "mulaw" else 640
    encoding = "audio/x-mulaw" if codec == "mulaw" else "audio/x-l16"
    names = ["inbound", "outbound"][:tracks]
    rng = random.Random(first)
    if audio == "call":  # real speech and pauses: what the VAD and the buffers meet on real calls
        payloads = {t: call_payloads(codec, t) for t in names}
    else:  # random bytes: the VAD hears non-stop "speech", the worst case for memory
        noise = [
            base64.b64encode(bytes(rng.getrandbits(8) for _ in range(size))).decode()
            for _ in range(8)
        ]
        payloads = {t: noise for t in names}
    conns = []
    pongs: list[asyncio.Task[None]] = []
    for i in range(first, first + streams):
        tok = sign_token(
            TokenClaims(jti=new_jti(), call_uuid="bench", exp=int(time.time()) + 3600), KEY
        )
        reader, writer = await handshake(port, f"/v1/audio/{tok}")
        start = {
            "event": "start",
            "sequenceNumber": 0,
            "start": {
                "streamId": f"bench-{i}",
                "callId": "bench",
                "tracks": names,
                "mediaFormat": {"encoding": encoding, "sampleRate": rate},
            },
        }
        writer.write(ws_frame(json.dumps(start).encode()))
        conns.append((reader, writer, f"bench-{i}"))
        pongs.append(asyncio.create_task(answer_pings(reader, writer)))
    sent = 0
    late_ms: list[float] = []
    cpu0 = time.process_time()
    began = time.monotonic()
    n_frames = int(seconds / FRAME_S)
    # Independent calls are not in phase: the streams are spread over PHASES slots of each
    # 20 ms period (a slot every 5 ms), as N calls started at random moments would be.
    slots = [conns[phase::PHASES] for phase in range(PHASES)]
    for n in range(1, n_frames + 1):
        for phase, group in enumerate(slots):
            due = began + n * FRAME_S + phase * FRAME_S / PHASES
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late_ms.append(max(0.0, time.monotonic() - due) * 1000)
            for _, writer, sid in group:
                offset = int(sid.rsplit("-", 1)[1])
                for track in names:
                    frames = payloads[track]
                    payload = frames[(n + offset * 37) % len(frames)]  # streams out of step
                    text = (
                        f'{{"event":"media","sequenceNumber":{n},"streamId":"{sid}","media":{{"track":"{track}",'
                        f'"timestamp":"{n * 20}","chunk":{n},"payload":"{payload}"}}}}'
                    )
                    writer.write(ws_frame(text.encode()))
                    sent += 1
            await asyncio.gather(*(w.drain() for _, w, _ in group))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - began
    for _, writer, sid in conns:
        writer.write(ws_frame(json.dumps({"event": "stop", "streamId": sid}).encode()))
        await writer.drain()
    await asyncio.sleep(1)
    for task in pongs:
        task.cancel()
    for _, writer, _ in conns:
        writer.close()
    late_ms.sort()
    print(
        json.dumps(
            {
                "sent": sent,
                "cpu_share": cpu / wall,
                "late_p99_ms": late_ms[int(len(late_ms) * 0.99)],
                "wall_s": wall,
            }
        ),
        flush=True,
    )


# ----------------------------------------------------------------------------------- the runner


def python(*args: str, core: int) -> list[str]:
    cmd = [sys.executable, "-m", "bench.load", *args]
    return ["taskset", "-c", str(core), *cmd] if os.path.exists("/usr/bin/taskset") else cmd


def run_step(
    streams: int,
    seconds: float,
    codec: str,
    tracks: int,
    baseline: str,
    generators: int = 2,
    audio: str = "call",
    live: bool = False,
) -> dict[str, Any]:
    ready = Path(f"/tmp/callstream-bench-{os.getpid()}-{random.getrandbits(32)}")
    ready.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "layers" / "shared"), str(ROOT / "services"), str(ROOT)]
        ),
    }
    server = subprocess.Popen(
        python(
            "serve",
            "--port",
            "0",
            "--ready",
            str(ready),
            *(["--baseline", baseline] if baseline else []),
            *(["--live"] if live else []),
            core=0,
        ),
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    while not (ready.exists() and ready.read_text()):
        time.sleep(0.05)
    port = int(ready.read_text())
    per = [
        streams // generators + (1 if i < streams % generators else 0) for i in range(generators)
    ]
    gens = [
        subprocess.Popen(
            python(
                "generate",
                "--port",
                str(port),
                "--streams",
                str(n),
                "--seconds",
                str(seconds),
                "--codec",
                codec,
                "--tracks",
                str(tracks),
                "--first",
                str(sum(per[:i])),
                "--audio",
                audio,
                core=1,
            ),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, n in enumerate(per)
        if n
    ]
    gen_out = [json.loads(g.communicate()[0].strip().splitlines()[-1]) for g in gens]
    server.send_signal(signal.SIGTERM)
    srv = json.loads(server.communicate()[0].strip().splitlines()[-1])
    ready.unlink(missing_ok=True)
    sent = sum(g["sent"] for g in gen_out)
    return {
        "server": f"bare {baseline}" if baseline else "callstream" + (" (live)" if live else ""),
        "audio": audio,
        "streams": streams,
        "codec": codec,
        "tracks": tracks,
        "sent": sent,
        "received": srv["frames"],
        "lost": sent - srv["frames"],
        "lag_p50_ms": srv.get("lag_p50_ms"),
        "lag_p99_ms": srv.get("lag_p99_ms"),
        "server_cpu": srv["cpu_share"],
        "server_rss_mb": srv["rss_mb"],
        "kb_per_stream": (srv["rss_loaded_mb"] - srv["rss_idle_mb"]) * 1024 / streams
        if "rss_loaded_mb" in srv
        else None,
        "rss_every_10s_mb": srv.get("rss_every_10s_mb"),
        "loop_late_p99_ms": srv.get("loop_late_p99_ms"),
        "loop_late_max_ms": srv.get("loop_late_max_ms"),
        "gen_cpu": max(g["cpu_share"] for g in gen_out),
        "gen_late_p99_ms": max(g["late_p99_ms"] for g in gen_out),
    }


def table(steps: list[dict[str, Any]], seconds: float) -> str:
    """The steps as a markdown table, with capacity per core from CPU per stream.

    "Holds" = no frame lost and lag p99 under 50 ms. Per-core capacity is the stream count the
    measured CPU per stream fits into 90 % of a core; the ratio compares it with the bare
    websockets server's in the same run.
    """
    bare = next((s for s in steps if s["server"] == "bare websockets"), None)
    bare_cap = bare["streams"] * 0.9 / bare["server_cpu"] if bare else None
    lines = [
        f"{seconds:.0f} s per step; codec {steps[0]['codec']}, {steps[0]['tracks']} track(s).",
        "",
        "| server | streams | lost | lag p50 / p99 ms | holds | server CPU | ≈ streams per core "
        "(90 %) | ratio to bare websockets | KB per stream | generator CPU / p99 late ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        cap = s["streams"] * 0.9 / s["server_cpu"]
        lag = (
            f"{s['lag_p50_ms']:.0f} / {s['lag_p99_ms']:.0f}" if s["lag_p50_ms"] is not None else "-"
        )
        holds = (
            "-"
            if s["lag_p99_ms"] is None
            else ("yes" if s["lost"] == 0 and s["lag_p99_ms"] < 50 else "no")
        )
        ratio = f"{cap / bare_cap:.2f}" if bare_cap else "-"
        kb = f"{s['kb_per_stream']:.0f}" if s["kb_per_stream"] is not None else "-"
        lines.append(
            f"| {s['server']} | {s['streams']} | {s['lost']} | {lag} | {holds} "
            f"| {s['server_cpu']:.0%} | {cap:.0f} | {ratio} | {kb} "
            f"| {s['gen_cpu']:.0%} / {s['gen_late_p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ready", type=Path, required=True)
    s.add_argument("--baseline", choices=["websockets", "picows"])
    s.add_argument("--live", action="store_true")
    g = sub.add_parser("generate")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--streams", type=int, required=True)
    g.add_argument("--seconds", type=float, required=True)
    g.add_argument("--codec", default="mulaw")
    g.add_argument("--tracks", type=int, default=1)
    g.add_argument("--first", type=int, default=0)
    g.add_argument("--audio", default="call", choices=["call", "noise"])
    parser.add_argument("--streams", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--codec", default="mulaw", choices=["mulaw", "l16-16k"])
    parser.add_argument("--tracks", type=int, default=1, choices=[1, 2])
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also measure the bare baselines (websockets: the issue's reference; picows)",
    )
    parser.add_argument(
        "--live", action="store_true", help="also each step with live recognition's ingest side"
    )
    parser.add_argument("--json", type=Path, help="also write the steps here")
    parser.add_argument(
        "--audio",
        default="call",
        choices=["call", "noise"],
        help="frames of the shared call, or random bytes",
    )
    args = parser.parse_args()
    if args.command == "serve":
        if args.baseline is None:
            asyncio.run(serve_callstream(args.port, args.ready, args.live))
        else:
            serve = {"websockets": serve_baseline}.get(args.baseline, serve_baseline_picows)
            asyncio.run(serve(args.port, args.ready))
    elif args.command == "generate":
        asyncio.run(
            generate(
                args.port,
                args.streams,
                args.seconds,
                "mulaw" if args.codec == "mulaw" else "l16",
                args.tracks,
                args.first,
                args.audio,
            )
        )
    else:
        codec = "mulaw" if args.codec == "mulaw" else "l16"
        steps = [
            run_step(n, args.seconds, codec, args.tracks, "", audio=args.audio, live=live)
            for n in args.streams
            for live in ((False, True) if args.live else (False,))
        ]
        if args.baseline:  # the references, at the smallest step: the generator keeps up there
            steps += [
                run_step(min(args.streams), args.seconds, codec, args.tracks, b, audio=args.audio)
                for b in ("websockets", "picows")
            ]
        if args.json:
            args.json.write_text(json.dumps(steps, indent=1))
        print(table(steps, args.seconds))


if __name__ == "__main__":
    main()
