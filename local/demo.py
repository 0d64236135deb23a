"""``make demo``: for now, a check that the environment is ready and a pointer to what runs.

The embedded stack (moto server, HTTP gateway, Kinesis poller, Vobiz simulator, live printing)
is the next piece of work; until it lands this runs the pipeline's offline check: the session
tape of the shared call through the real assembler and voice-activity segmenter.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from callstream.assembler import Assembler
from callstream.protocol import parse_message
from callstream.records import AudioRecord
from callstream.settings import AudioSettings
from callstream.vad import Segmenter

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Replay a session tape through the assembler and the segmenter; print what came out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tape", default="support_call_mulaw_8k", help="a tape in events/tapes/")
    args = parser.parse_args(argv)
    tape = ROOT / "events" / "tapes" / f"{args.tape}.jsonl"
    cfg = AudioSettings()
    asm = Assembler(audio_settings=cfg, segmenter_factory=lambda r, t: Segmenter(r, t, cfg))
    began = time.perf_counter()
    audio = 0
    for line in tape.read_text().splitlines():
        asm.receive(parse_message(line))
        audio += sum(1 for r in asm.records_ready() if isinstance(r, AudioRecord))
        for u in asm.utterances_ready():
            print(f"  utterance {u.track:8} {u.start_ms / 1000:6.2f}-{u.end_ms / 1000:6.2f} s")
    elapsed = time.perf_counter() - began
    stats = asm.stats
    print(
        f"{tape.name}: {stats.frames} frames → {audio} audio records, "
        f"{stats.utterances} utterances in {elapsed:.2f} s"
    )
    print("The full embedded demo (simulated call, transcripts, sentiment) is the next release;")
    print("`make test` runs the whole pipeline through the real code today.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
