"""Kinesis efficiency: records and PUT payload units per stream-minute, against the minimum.

Run: .venv/bin/python -m bench.kinesis_efficiency

The shared call goes through the real assembler as the stream server runs it (default settings:
≤ 25,100 bytes and ≤ 1 s of audio per record). Kinesis bills record size two ways:

* provisioned streams: PUT payload units of 25 KB, rounded up per record;
* on-demand streams (what template.yaml deploys): data ingested, rounded up to 1 KB per record.

Each is reported against its minimum: the stream's bytes in one piece (bytes / 25 KB, or / 1 KB).
"""

import math
from pathlib import Path

from callstream.audio import records
from callstream.audio.assembler import Assembler
from callstream.audio.events import records as records_of
from callstream.audio.protocol import parse_message
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import CallAudio, messages, read_wav

AUDIO = Path(__file__).resolve().parents[1] / "samples"
UNIT = 25 * 1024
KB = 1024


def measure(codec: str, rate: int, tracks: tuple[str, ...], settings: AudioLimits) -> dict:
    pcm = {t: read_wav(AUDIO / f"support_call_{rate}_{t}.wav")[0] for t in tracks}
    audio = CallAudio(tracks=pcm, sample_rate=rate)
    asm = Assembler(limits=settings)
    sizes = []
    for line in messages(audio, codec):
        asm.receive(parse_message(line))
        sizes += [len(records.encode(r)) for r in records_of(asm.events_ready())]
    minutes = max(len(p) for p in pcm.values()) / 2 / rate / 60
    total = sum(sizes)
    units = sum(math.ceil(s / UNIT) for s in sizes)
    minimum = math.ceil(total / UNIT)
    billed_kb = sum(math.ceil(s / KB) for s in sizes)
    return {
        "records/min": len(sizes) / minutes,
        "units/min": units / minutes,
        "minimum units/min": minimum / minutes,
        "overhead": units / minimum - 1,
        "billed KB/min": billed_kb / minutes,
        "on-demand overhead": billed_kb / math.ceil(total / KB) - 1,
    }


def main() -> None:
    cases = [
        ("mulaw", 8000, ("inbound",)),
        ("mulaw", 8000, ("inbound", "outbound")),
        ("l16", 8000, ("inbound",)),
        ("l16", 16000, ("inbound",)),
        ("l16", 16000, ("inbound", "outbound")),
    ]
    print(
        "| settings | codec | tracks | records/min | PUT units/min | minimum | over (provisioned) "
        "| billed KB/min | over (on-demand) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, cfg in (
        ("default (≤ 25,100 B, ≤ 1 s)", AudioLimits()),
        ("≤ 25,100 B, ≤ 3.2 s", AudioLimits(record_max_ms=3200)),
    ):
        for codec, rate, tracks in cases:
            r = measure(codec, rate, tracks, cfg)
            name = "μ-law 8 kHz" if codec == "mulaw" else f"L16 {rate // 1000} kHz"
            print(
                f"| {label} | {name} | {len(tracks)} | {r['records/min']:.1f} "
                f"| {r['units/min']:.1f} | {r['minimum units/min']:.1f} | {r['overhead']:.0%} "
                f"| {r['billed KB/min']:.0f} | {r['on-demand overhead']:.1%} |"
            )


if __name__ == "__main__":
    main()
