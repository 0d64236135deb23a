"""``make demo``: a simulated call through callstream's real code, on this machine.

Starts the embedded stack (moto, the stream server, the HTTP gateway, the consumers, the Vobiz
simulator), places each call through the public API as a user would
(``POST /v1/calls/{call_uuid}/streams``), streams the WAVs into it, prints transcript lines with
speaker and sentiment as they arrive (heard live, each line grows as the caller speaks, then
settles), then a summary, writes the outputs and stops everything.

Outputs per call in ``OUT/<call_uuid>/``: ``recording.wav``, ``played.wav`` (what the caller
heard, when the stream is bidirectional), ``events.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
import wave
from pathlib import Path
from typing import Any

from local import vobiz_wire as wire
from local.stack import Stack
from local.vobiz_caller import Conversation
from local.vobiz_sim import AUDIO, Faults, SimCall

CONTENT_TYPES = {
    "mulaw": "audio/x-mulaw;rate=8000",
    "l16-8k": "audio/x-l16;rate=8000",
    "l16-16k": "audio/x-l16;rate=16000",
    "l16-24k": "audio/x-l16;rate=24000",
}
ROLE = {"inbound": "caller", "outbound": "agent "}
COLUMNS = 72


def fit(line: str) -> str:
    """A growing line in one terminal row: its start (who) and its newest words."""
    if len(line) <= COLUMNS:
        return line
    return line[:28] + "…" + line[-(COLUMNS - 29) :]


def agent_line(call: str, data: dict[str, Any]) -> str | None:
    """The voice agent's side of the conversation, as its turn notes say it."""
    action = data.get("action")
    if action == "turn" and data.get("reply"):  # the latency is timed by the caller: below
        return f"  {call[:8]}  agent   {'said' if data.get('caller') else 'greeting':8}  {data['reply']}"
    if action == "barge_in":
        return f"  {call[:8]}  agent   ✂ the caller talked over the agent: its audio was cleared"
    if action == "tool":
        return f"  {call[:8]}  agent   ⚙ {data.get('name')}"
    if action == "model_failed":
        return f"  {call[:8]}  agent   ⚠ the model failed ({data.get('error')}): an apology"
    return None


def print_turns(call: SimCall) -> None:
    """Each of the caller's turns as the caller measured it (its words' end → reply audio)."""
    assert call.conversation is not None
    print(f"\nconversation of call {call.call_uuid}, measured by the caller")
    print(f"  {'reply':>7}  {'barge-in':>8}  caller said")
    for turn in call.conversation.turns:
        reply = f"{turn.latency_s * 1000:.0f} ms" if turn.latency_s is not None else "none"
        barge = f"{turn.barge_in_s * 1000:.0f} ms" if turn.barge_in_s is not None else ""
        print(f"  {reply:>7}  {barge:>8}  {turn.text}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The demo's options (``make demo ARGS="…"``)."""
    parser = argparse.ArgumentParser(
        prog="python -m local.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--inbound",
        type=Path,
        default=AUDIO / "support_call_8000_inbound.wav",
        help="WAV of the caller (inbound track)",
    )
    parser.add_argument(
        "--outbound",
        type=Path,
        default=AUDIO / "support_call_8000_outbound.wav",
        help="WAV of the agent (outbound track)",
    )
    parser.add_argument("--codec", choices=sorted(CONTENT_TYPES), default="mulaw")
    parser.add_argument(
        "--speed", type=float, default=4.0, help="play the call N times faster than real time"
    )
    parser.add_argument(
        "--agent",
        choices=["none", "echo", "prompt", "assistant"],
        default="none",
        help="talk back: echo, a prompt, or assistant (a conversation with the voice agent: "
        "the simulated caller takes turns with it, in real time, and interrupts it once)",
    )
    parser.add_argument(
        "--live",
        choices=["local", "off"],
        default="local",
        help="hear the call live (PocketSphinx in the stream server's recognition worker: each "
        "line grows while the caller speaks, then settles) or off (each utterance is "
        "transcribed after it ends, by the transcription consumer)",
    )
    parser.add_argument("--calls", type=int, default=1, help="simultaneous calls")
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument(
        "--answer",
        action="store_true",
        help="start the call through the answer URL (<Stream> XML, as Vobiz answers a call) "
        "instead of the REST API",
    )
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--linger",
        type=float,
        default=0,
        help="keep the stack (and its console) up this many seconds after the call",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING"],
        default="WARNING",
        help="what the stack writes to <out>/stack.log",
    )
    faults = parser.add_argument_group("faults (the Vobiz simulator's switches)")
    faults.add_argument(
        "--drop", metavar="FIRST-LAST", help="drop these frames (chunk numbers) on every track"
    )
    faults.add_argument(
        "--drop-at",
        type=int,
        metavar="FRAME",
        help="drop the socket after this frame: Vobiz reconnects (maxRetries) and the call "
        "goes on; implies --answer (reconnects are a <Stream> XML feature)",
    )
    faults.add_argument(
        "--disconnect-at",
        type=int,
        metavar="FRAME",
        help="cut the socket abruptly after this frame, for good",
    )
    faults.add_argument(
        "--send-stop",
        action="store_true",
        help="send the inbound stop event some sources show (Vobiz just closes the socket)",
    )
    faults.add_argument(
        "--l16-little-endian",
        action="store_true",
        help="send inbound L16 little-endian, as Vobiz's own reference code does (its "
        "documentation says big-endian; callstream detects which)",
    )
    faults.add_argument(
        "--duplicate-callbacks", action="store_true", help="send every status callback twice"
    )
    faults.add_argument(
        "--reorder-callbacks", action="store_true", help="send StopStream before StartStream"
    )
    return parser.parse_args(argv)


def api(
    stack: Stack, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Call the public API through the gateway, as a user would (bearer token for IAM)."""
    assert stack.gateway is not None
    request = urllib.request.Request(  # noqa: S310 - the local gateway
        stack.gateway.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Authorization": f"Bearer {stack.token}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"{}")


def talk_on(stack: Stack, call: SimCall, agent: str = "none") -> dict[str, Any]:
    """Start a bidirectional inbound stream with ``agent`` on ``call``, as a user would.

    Returns:
        The start API's answer (201).

    Raises:
        AssertionError: the API refused it (its status and answer).
    """
    stack.sim.add_call(call)
    status, answer = api(
        stack,
        "POST",
        f"/v1/calls/{call.call_uuid}/streams",
        {"audio_track": "inbound", "bidirectional": True, "agent": agent},
    )
    assert status == 201, (status, answer)
    return answer


def faults_of(args: argparse.Namespace) -> Faults:
    """The simulator's fault switches from the options."""
    drop: frozenset[int] = frozenset()
    if args.drop:
        first, _, last = args.drop.partition("-")
        drop = frozenset(range(int(first), int(last or first) + 1))
    return Faults(
        drop_chunks=drop,
        drop_at=args.drop_at,
        disconnect_at=args.disconnect_at,
        send_stop=args.send_stop,
        l16_little_endian=args.l16_little_endian,
        duplicate_callbacks=args.duplicate_callbacks,
        reorder_callbacks=args.reorder_callbacks,
    )


class InOrder:
    """Holds an alert until the line that raised it is printed.

    The bus keeps no order between events (EventBridge delivers each on its own), and the
    alert is published first.
    """

    def __init__(self) -> None:
        self._printed: set[tuple[str, str]] = set()
        self._held: dict[tuple[str, str], str] = {}

    def line(self, detail: dict[str, Any], line: str) -> list[str]:
        """A scored line: it, then any alert it raised."""
        key = (str(detail.get("stream_id")), str(detail.get("utterance")))
        self._printed.add(key)
        return [line, *([self._held.pop(key)] if key in self._held else [])]

    def alert(self, detail: dict[str, Any], line: str) -> list[str]:
        """An alert: printed now if its line was, else after it."""
        key = (str(detail.get("stream_id")), str(detail.get("utterance")))
        if key in self._printed:
            return [line]
        self._held[key] = line
        return []

    def left(self) -> list[str]:
        """Alerts whose line never came (printed at the end, not lost)."""
        held, self._held = list(self._held.values()), {}
        return held


def ended_early(call: SimCall, frames: int) -> str | None:
    """Why the simulated call did not stream all of its ``frames`` (None: it did, or meant not).

    A call the app stopped, or one whose faults drop frames on purpose, is not early; a
    conversation is, if its caller did not get to say all its lines.
    """
    if call.stopped_by_app:
        return None
    if call.error is not None:
        return f"call {call.call_uuid}: the simulator reports: {call.error}"
    if call.conversation is not None:  # it lasts as long as the talk: whether it said it all
        said, lines = len(call.conversation.turns), len(call.conversation.utterances)
        return (
            None
            if said == lines
            else f"call {call.call_uuid}: the caller said {said} of {lines} lines"
        )
    faults = call.faults
    planned = faults.drop_chunks or faults.drop_at is not None or faults.disconnect_at is not None
    if not planned and call.frames_sent < frames:
        return (
            f"call {call.call_uuid}: only {call.frames_sent} of {frames} frames were streamed "
            "before the socket ended"
        )
    return None


def wav_problem(path: Path) -> str | None:
    """What is wrong with a WAV the simulator is to play, before anything starts; None if fine."""
    if not path.is_file():
        return "no such file"
    try:
        with wave.open(str(path)) as w:
            channels, width, frames = w.getnchannels(), w.getsampwidth(), w.getnframes()
    except (wave.Error, EOFError) as error:
        return f"not a PCM WAV ({error})"
    if channels != 1 or width != 2:
        return f"{channels} channel(s) of {8 * width}-bit samples"
    if frames == 0:
        return "no audio in it"
    return None


def wav_frames(path: Path) -> int:
    """20 ms frames in a WAV file."""
    with wave.open(str(path)) as w:
        return -(-w.getnframes() * 50 // w.getframerate())


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every call completed and its outputs were written."""
    warnings.filterwarnings("ignore", "No application metrics to publish")  # read-only routes
    args = parse_args(argv)
    talking = args.agent == "assistant"
    if talking:  # a conversation runs at the speed of speech, heard live
        args.speed, args.live, args.outbound = 1.0, "local", None
    for path in (p for p in (args.inbound, args.outbound) if p):
        problem = wav_problem(path)
        if problem is not None:  # said now, not as a KeyError once the stack is up
            print(
                f"callstream demo: {path}: {problem}; the simulator plays mono 16-bit PCM WAVs "
                f"(any rate), e.g. sox {path.name} -c 1 -b 16 fixed.wav",
                file=sys.stderr,
            )
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    events: dict[str, list[dict[str, Any]]] = {}
    completed: dict[str, list[dict[str, Any]]] = {}
    lock = threading.Lock()
    in_order = InOrder()

    def on_event(event: dict[str, Any]) -> None:
        detail = event["detail"]
        call = detail.get("call_uuid") or ""
        with lock:
            events.setdefault(call, []).append(event)
        kind = event["detail-type"]
        line = None
        lines: list[str] = []
        if kind == "Transcript Partial" or (
            kind == "Utterance Transcribed" and detail.get("kind") == "provisional"
        ):
            line = growing(call, detail)
            if line is not None and sys.stdout.isatty():  # grows in place until the next line
                print(f"\r{fit(line):<{COLUMNS}}", end="", flush=True)
                shown_growing[0] = time.monotonic()
                return
        elif kind == "Sentiment Scored":
            role = ROLE.get(detail.get("track", ""), "?")
            said = (
                f"  {call[:8]}  {role}  {detail.get('sentiment', ''):8}  {detail.get('text', '')}"
            )
            with lock:
                lines = in_order.line(detail, said)
        elif kind == "Sentiment Alert":
            with lock:
                lines = in_order.alert(detail, f"  {call[:8]}  ⚠ alert: the caller turned negative")
        elif kind == "Call Ended":
            line = f"  {call[:8]}  call ended ({detail.get('hangup_cause')}, Vobiz's Hangup)"
        elif kind == "Call Completed":
            completed.setdefault(call, []).append(detail)
        elif kind == "Session Event" and detail.get("name") == "agent":
            line = agent_line(call, detail.get("data") or {})
        for each in [line] if line is not None else lines:
            print(f"\r{each:<{COLUMNS}}" if sys.stdout.isatty() else each, flush=True)

    heard: dict[tuple[str, str], str] = {}  # (stream, line) → its words last printed
    shown_growing = [0.0]  # when a growing line was last drawn (a terminal: the bar waits)

    def growing(call: str, detail: dict[str, Any]) -> str | None:
        """A live line as it grows (``…``) and settles (``~``: its final comes with sentiment)."""
        line = (str(detail.get("stream_id")), str(detail.get("result_id")))
        text = str(detail.get("text") or "")
        provisional = detail.get("kind") == "provisional"
        if not text or (heard.get(line) == text and not provisional):
            return None
        heard[line] = text
        mark = "~" if provisional else "…"
        role = ROLE.get(detail.get("track", ""), "?")
        return f"  {call[:8]}  {role}  {mark:8}  {text}"

    log = args.out / "stack.log"
    print(
        "callstream demo: starting the embedded stack (moto, stream server, gateway, consumers, Vobiz simulator)…",
        flush=True,
    )
    via_answer = args.answer or args.drop_at is not None
    with Stack(speed=args.speed, log_file=log, log_level=args.log_level, live=args.live) as stack:
        assert stack.poller is not None and stack.gateway is not None
        stack.poller.listeners.append(on_event)
        for name, value in stack.endpoints().items():
            if name != "token":
                print(f"  {name:9} {value}")
        calls = []
        tracks = [t for t, p in (("inbound", args.inbound), ("outbound", args.outbound)) if p]
        audio_track = "both" if len(tracks) == 2 else tracks[0]
        bidirectional = args.agent != "none"
        if bidirectional and audio_track != "inbound":
            audio_track, args.outbound = "inbound", None  # Vobiz talks back on inbound only
            tracks = ["inbound"]
            print("  (an agent talks back: Vobiz allows that on the inbound track only)")
        for _ in range(args.calls):
            call = SimCall(
                str(uuid.uuid4()),
                inbound=args.inbound,
                outbound=args.outbound,
                faults=faults_of(args),
                conversation=(
                    Conversation.from_sample(wire.CONTENT_TYPES[CONTENT_TYPES[args.codec]][1])
                    if talking
                    else None
                ),
            )
            if via_answer:
                query = urllib.parse.urlencode(
                    {
                        "content_type": CONTENT_TYPES[args.codec],
                        "audio_track": audio_track,
                        "bidirectional": str(bidirectional).lower(),
                        "agent": args.agent,
                        **({} if bidirectional else {"dial": "+918000000002"}),
                    }
                )
                plan = stack.sim.answer(call, f"{stack.gateway.url}/vobiz/answer?{query}")
                if plan.hangup_cause is not None:
                    print(f"Vobiz hung the call up: {plan.hangup_cause}", file=sys.stderr)
                    return 1
                print(
                    f"call {call.call_uuid}: answered with <Stream> ({args.codec}, {audio_track}, "
                    f"agent {args.agent}, maxRetries {plan.stream.max_retries if plan.stream else 0})"
                )
            else:
                stack.sim.add_call(call)
                status, answer = api(
                    stack,
                    "POST",
                    f"/v1/calls/{call.call_uuid}/streams",
                    {
                        "audio_track": audio_track,
                        "content_type": CONTENT_TYPES[args.codec],
                        "bidirectional": bidirectional,
                        "agent": args.agent,
                    },
                )
                if status != 201:
                    print(f"start failed: {status} {answer}", file=sys.stderr)
                    return 1
                print(
                    f"call {call.call_uuid}: stream {answer['stream_id']} ({args.codec}, {audio_track}, agent {args.agent})"
                )
            calls.append(call)
        total = (
            max(wav_frames(p) for p in (args.inbound, args.outbound) if p)
            * len(tracks)
            * len(calls)
        )
        if talking:  # the caller's utterances and the waits for replies: about 2x the words
            total *= 2
        deadline = time.monotonic() + args.timeout
        tty, shown = sys.stdout.isatty(), -1
        reconnects = {c.call_uuid: 0 for c in calls}

        def finished(call: SimCall) -> bool:  # the call is over and its last connection's
            # summary is in (an earlier connection's may come later, or never: it is superseded)
            last = max(
                (int(d.get("generation", 1)) for d in completed.get(call.call_uuid, [])), default=0
            )
            if call.done.is_set() and call.error is not None and last == 0:
                return True  # the simulator failed before anything was streamed: said below
            return call.done.is_set() and last >= len(call.stream_ids)

        while not all(finished(c) for c in calls) and time.monotonic() < deadline:
            for c in calls:
                # told once the new connection has its stream id (the drop is counted before
                # Vobiz comes back: the old one was named)
                if c.reconnects > reconnects[c.call_uuid] and len(c.stream_ids) > c.reconnects:
                    reconnects[c.call_uuid] = c.reconnects
                    line = (
                        f"  {c.call_uuid[:8]}  ↺ the socket dropped; Vobiz reconnected as stream "
                        f"{c.stream_ids[-1][:8]} and the call goes on (same recording)"
                    )
                    print(f"\r{line:<{COLUMNS}}" if tty else line, flush=True)
            percent = min(100, 100 * sum(c.frames_sent for c in calls) // total)
            bar = "#" * (30 * percent // 100)
            if tty:  # in place, unless a growing line was drawn there a moment ago
                if time.monotonic() - shown_growing[0] > 1.0:
                    status = f"  [{bar:30}] {percent:3d}% of the call streamed"
                    print(f"\r{status:<{COLUMNS}}", end="", flush=True)
            elif percent // 25 > shown:  # not a terminal: a line per quarter
                shown = percent // 25
                print(f"  [{bar:30}] {percent:3d}% of the call streamed", flush=True)
            time.sleep(0.25)
        if tty:
            print()
        for alert in in_order.left():
            print(alert, flush=True)
        late = [c for c in calls if not finished(c)]
        if late:
            print(f"timed out waiting for {len(late)} call(s); see {log}", file=sys.stderr)
            for call in late:
                if problem := ended_early(call, total // len(calls)):
                    print(f"  {problem}", file=sys.stderr)
            for error in stack.poller.errors[-5:]:
                print(f"  {error}", file=sys.stderr)
            return 1
        early = [problem for c in calls if (problem := ended_early(c, total // len(calls)))]
        for problem in early:
            print(problem, file=sys.stderr)
        for call in calls:
            if call.call_uuid not in completed:
                continue  # nothing reached the pipeline: said above, nothing to write
            write_outputs(
                stack,
                args.out,
                call,
                max(completed[call.call_uuid], key=lambda d: int(d.get("generation", 1))),
                events.get(call.call_uuid, []),
            )
        for call in calls:
            if call.conversation is not None:
                print_turns(call)
        if early:
            print(f"{len(early)} call(s) ended early; see {log}", file=sys.stderr)
            return 1
        if args.linger > 0:
            print(f"the console stays up {args.linger:.0f} s (Ctrl-C ends it sooner)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.linger)
    print(f"done in {time.monotonic() - started:.1f} s; outputs in {args.out}/<call_uuid>/")
    return 0


def write_outputs(  # noqa: D103 - documented in the module docstring
    stack: Stack, out: Path, call: SimCall, completed: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    folder = out / call.call_uuid
    folder.mkdir(parents=True, exist_ok=True)
    bucket = stack.aws.names["RecordingsBucket"]
    s3 = stack.aws.client("s3")
    summary = json.loads(s3.get_object(Bucket=bucket, Key=completed["summary"])["Body"].read())
    (folder / "recording.wav").write_bytes(
        s3.get_object(Bucket=bucket, Key=summary["recording"])["Body"].read()
    )
    if call.played:
        with wave.open(str(folder / "played.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(call.played_rate)
            w.writeframes(bytes(call.played))
    session = [
        json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"events/{summary['stream_id']}/").get(
            "Contents", []
        )
    ]
    with (folder / "events.jsonl").open("w") as f:
        for item in session:
            f.write(json.dumps({"source": "session", **item}) + "\n")
        for event in events:
            f.write(
                json.dumps(
                    {
                        "source": "bus",
                        "detail-type": event["detail-type"],
                        "time": event["time"],
                        "detail": event["detail"],
                    }
                )
                + "\n"
            )
    utterances = [
        {k: u[k] for k in ("track", "start_s", "end_s", "text", "sentiment")}
        for u in summary["utterances"]
    ]
    doc = {
        "call_uuid": call.call_uuid,
        "stream_id": summary["stream_id"],
        "recording": "recording.wav",
        "duration_s": summary["duration_s"],
        "talk_time_s": summary["talk_time_s"],
        "gaps": summary["gaps"],
        "vobiz_stream_ids": call.stream_ids,
        "utterances": utterances,
        "digest": summary.get("digest"),
    }
    if call.played:
        doc["played"] = "played.wav"
    (folder / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"\nsummary of call {call.call_uuid} ({summary['duration_s']:.1f} s, {len(utterances)} utterances)"
    )
    print(f"  {'start':>6} {'end':>6}  {'who':6}  {'sentiment':9}  text")
    for u in utterances:
        print(
            f"  {u['start_s']:6.1f} {u['end_s']:6.1f}  {ROLE[u['track']]}  {u['sentiment'] or '':9}  {u['text']}"
        )
    talk = summary["talk_time_s"]
    # the agent's own track is streamed only with outbound or both; what it played into the
    # call is the simulator's (played.wav), as Vobiz's caller heard it
    agent = (
        f"agent {talk['outbound']:.1f} s"
        if "outbound" in talk
        else f"agent played {len(call.played) / 2 / call.played_rate:.1f} s (its track not streamed)"
    )
    print(f"  talk time: caller {talk.get('inbound', 0):.1f} s, {agent}; outputs: {folder}/")
    digest = summary.get("digest") or {}
    if digest:
        print(f"  digest ({digest['source']}): {digest['summary']}")
        for item in digest["action_items"]:
            print(f"    to do: {item}")


if __name__ == "__main__":
    sys.exit(main())
