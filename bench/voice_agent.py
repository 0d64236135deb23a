"""The voice agent, measured from the caller's words: reply latency, barge-in, agents per core.

Run: .venv/bin/python -m bench.voice_agent [--calls 3] [--skip-cloud]

1. **Reply latency.** Whole conversations on the embedded stack, at real time: the simulator's
   caller (``local.vobiz_caller``) says the sample caller's four lines, each once the reply to
   the last has played, and talks over one reply. The caller times each turn from the end of its
   own words (the send of the utterance's last frame, cut at the script's word end) to the first
   ``playAudio`` of the reply on its socket. Offline parts (live PocketSphinx, the scripted
   model, espeak-ng), then the same with the model's first token 300 ms late and the voice's
   first audio 150 ms late (typical cloud figures, ``CALLSTREAM_ASSISTANT_*_DELAY_MS``), and
   that voice again making each sentence only at real time, 100 ms at a time
   (``CALLSTREAM_ASSISTANT_VOICE_PACE=1``, the slowest a streaming voice can be and keep up).
   The agent's own turn notes split it: end of turn (quiet, and the recogniser catching up, in
   media time), model first token, first synthesised audio, sending; the rest is the wire, the
   loop and the simulator's pacing.
2. **Barge-in.** The onset of the words said over a reply → the ``clearAudio`` on the caller's
   socket.
3. **Agents per core.** The agent's own work for a call in which every turn talks (its VAD on
   every 20 ms frame, turn-taking, the espeak-ng voice, resampling and encoding its speech),
   measured in CPU time for the sample call's 40 s, in one process; recognition is not in it
   (Transcribe in AWS; PocketSphinx's own cost is in bench/live_recognition.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

from local.demo import talk_on
from local.stack import Stack
from local.vobiz_caller import Conversation
from local.vobiz_sim import SimCall

CLOUD = {"CALLSTREAM_ASSISTANT_MODEL_DELAY_MS": "300", "CALLSTREAM_ASSISTANT_VOICE_DELAY_MS": "150"}
#: The cloud voice as slow as a streaming voice can be and keep up: it makes each sentence at
#: real time, 100 ms at a time (a reply that waited for a whole sentence would wait seconds).
STREAMING = CLOUD | {"CALLSTREAM_ASSISTANT_VOICE_PACE": "1"}
SPLIT = ("end_of_turn_ms", "model_first_ms", "voice_first_ms", "send_ms")


@dataclass
class Run:
    """What one configuration's conversations gave."""

    latency_ms: list[float] = field(default_factory=list)
    barge_in_ms: list[float] = field(default_factory=list)
    split: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SPLIT})
    unanswered: int = 0


def converse(calls: int, env: dict[str, str]) -> Run:
    """``calls`` conversations one after another on one embedded stack."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    run = Run()
    notes: list[dict[str, Any]] = []
    lock = threading.Lock()

    def keep(event: dict[str, Any]) -> None:
        detail = event["detail"]
        if event["detail-type"] == "Session Event" and detail.get("name") == "agent":
            with lock:
                notes.append(detail["data"])

    try:
        with Stack(speed=1, live="local") as stack:
            assert stack.poller is not None
            stack.poller.listeners.append(keep)
            for _ in range(calls):
                conversation = Conversation.from_sample(8000)
                call = SimCall(str(uuid.uuid4()), outbound=None, conversation=conversation)
                talk_on(stack, call, agent="assistant")
                call.done.wait(180)
                for turn in conversation.turns:
                    if turn.latency_s is None:
                        run.unanswered += 1
                    else:
                        run.latency_ms.append(turn.latency_s * 1000)
                    if turn.barge_in_s is not None:
                        run.barge_in_ms.append(turn.barge_in_s * 1000)
            time.sleep(3)  # the last turn notes reach the bus
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for note in notes:
        if note.get("action") == "turn" and note.get("caller"):
            for key in SPLIT:
                if key in note:
                    run.split[key].append(float(note[key]))
    return run


def percentiles(values: list[float]) -> str:
    """p50 / p95 / max, or a dash."""
    if not values:
        return "- | - | -"
    if len(values) == 1:
        return f"{values[0]:.0f} | {values[0]:.0f} | {values[0]:.0f}"
    cut = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return f"{cut[49]:.0f} | {cut[94]:.0f} | {max(values):.0f}"


def agent_cpu_per_call() -> tuple[float, float, float]:
    """(CPU seconds the agent spent on the sample call, the call's seconds, seconds it spoke)."""
    from callstream.audio.records import TranscriptRecord
    from local.vobiz_frames import read_wav
    from stream_server.agents import StreamInfo
    from stream_server.assistant import AssistantAgent, AssistantSettings
    from stream_server.scripted_model import DEFAULT_SCRIPT, ScriptedModel, load_script
    from stream_server.talkback import Talkback
    from stream_server.voices import EspeakVoice

    pcm, rate = read_wav(_sample_inbound())
    agent = AssistantAgent(
        ScriptedModel(load_script(DEFAULT_SCRIPT)), EspeakVoice(), AssistantSettings()
    )
    played_ms: list[float] = []

    async def send(text: bytes) -> None:
        pass  # a socket that takes everything at once

    def noted(action: str, data: dict[str, Any]) -> None:
        if action == "play":
            played_ms.append(float(data["ms"]))

    async def drive() -> float:
        talk = Talkback(
            send, stream_id="s", codec="mulaw", sample_rate=rate, bidirectional=True,
            on_action=noted,
        )  # fmt: skip
        await agent.on_start(talk, StreamInfo("s", "c", "mulaw", rate, ("inbound",), True))
        started = time.process_time()
        began = time.monotonic()
        step = rate // 50 * 2
        for n, offset in enumerate(range(0, len(pcm) - step + 1, step)):
            await agent.on_audio(talk, "inbound", pcm[offset : offset + step], offset // 2)
            if n % 50 == 49:  # a partial a second (the sample's words are not decoded here)
                line = TranscriptRecord(
                    stream_id="s", track="inbound", result_id=f"r{n // 500}", kind="partial",
                    text="my internet is down", start_ms=0.0, end_ms=offset / 2 / rate * 1000,
                )  # fmt: skip
                await agent.on_transcript(talk, line)
            await asyncio.sleep(max(0.0, began + (n + 1) * 0.02 - time.monotonic()))  # real time
        await agent.on_stop(talk, "close")
        return time.process_time() - started

    cpu = asyncio.run(drive())
    return cpu, len(pcm) / 2 / rate, sum(played_ms) / 1000


def _sample_inbound() -> str:
    from local.vobiz_caller import SAMPLES

    return str(SAMPLES / "support_call_8000_inbound.wav")


def main() -> int:
    """Run the conversations; print the tables."""
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(prog="python -m bench.voice_agent")
    parser.add_argument("--calls", type=int, default=3, help="conversations per configuration")
    parser.add_argument("--skip-cloud", action="store_true", help="offline parts only")
    parser.add_argument(
        "--barge-in-ms", type=int, help="the agent's barge-in minimum (default: the setting's)"
    )
    args = parser.parse_args()
    base = {"CALLSTREAM_ASSISTANT_BARGE_IN_MS": str(args.barge_in_ms)} if args.barge_in_ms else {}
    configs = [("offline parts", base)]
    if not args.skip_cloud:
        configs.append(("cloud-like delays", base | CLOUD))
        configs.append(("cloud-like, voice streaming at real time", base | STREAMING))
    print(f"{args.calls} conversation(s) of 4 caller turns per configuration, real time\n")
    print("| parts | turns | caller's words' end → first reply audio: p50 / p95 / max ms | "
          "unanswered | barge-in onset → clearAudio: p50 / p95 / max ms |")  # fmt: skip
    print("|---|---|---|---|---|")
    splits = []
    for name, env in configs:
        run = converse(args.calls, env)
        splits.append((name, run))
        turns = len(run.latency_ms) + run.unanswered
        print(
            f"| {name} | {turns} | {percentiles(run.latency_ms)} | {run.unanswered} | "
            f"{percentiles(run.barge_in_ms)} ({len(run.barge_in_ms)}) |"
        )
    print("\nThe agent's split of each reply (its turn notes), p50 / p95 ms\n")
    print("| parts | end of turn (media) | model first token | first synthesised audio | sending |")
    print("|---|---|---|---|---|")
    for name, run in splits:
        cells = []
        for key in SPLIT:
            values = run.split[key]
            if len(values) > 1:
                cut = statistics.quantiles(sorted(values), n=100, method="inclusive")
                cells.append(f"{cut[49]:.0f} / {cut[94]:.0f}")
            else:
                cells.append("-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    cpu, seconds, said = agent_cpu_per_call()
    share = cpu / seconds
    print(
        f"\nagent's own CPU for a {seconds:.0f} s call: {cpu * 1000:.0f} ms "
        f"({share * 100:.2f} % of a core; it spoke {said:.0f} s): about {int(1 / share)} "
        "talking agents per core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
