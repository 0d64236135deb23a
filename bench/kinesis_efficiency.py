"""Kinesis efficiency: records and PUT payload units per stream-minute, against the minimum.

Run: .venv/bin/python -m bench.kinesis_efficiency

The shared call goes through the real assembler as the stream server runs it (default settings:
≤ 25,100 bytes and ≤ 1 s of audio per record). A PUT payload unit is 25 KB of a record (rounded up
per record); the minimum for a stream is its bytes / 25 KB, rounded up.
"""

import math
from pathlib import Path

from callstream import records
from callstream.assembler import Assembler
from callstream.protocol import parse_message
from callstream.settings import AudioSettings
from local.vobiz_frames import CallAudio, messages, read_wav

AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
UNIT = 25 * 1024


def measure(codec: str, rate: int, tracks: tuple[str, ...], settings: AudioSettings) -> dict:
    pcm = {t: read_wav(AUDIO / f"support_call_{rate}_{t}.wav")[0] for t in tracks}
    audio = CallAudio(tracks=pcm, sample_rate=rate)
    asm = Assembler(audio_settings=settings)
    sizes = []
    for line in messages(audio, codec):
        asm.receive(parse_message(line))
        sizes += [len(records.encode(r)) for r in asm.records_ready()]
    minutes = max(len(p) for p in pcm.values()) / 2 / rate / 60
    total = sum(sizes)
    units = sum(math.ceil(s / UNIT) for s in sizes)
    minimum = math.ceil(total / UNIT)
    return {
        "records/min": len(sizes) / minutes,
        "units/min": units / minutes,
        "minimum units/min": minimum / minutes,
        "overhead": units / minimum - 1,
    }


def main() -> None:
    cases = [
        ("mulaw", 8000, ("inbound",)),
        ("mulaw", 8000, ("inbound", "outbound")),
        ("l16", 8000, ("inbound",)),
        ("l16", 16000, ("inbound",)),
        ("l16", 16000, ("inbound", "outbound")),
    ]
    for label, cfg in (
        ("default (≤ 25,100 B, ≤ 1 s)", AudioSettings()),
        ("≤ 25,100 B, ≤ 3 s", AudioSettings(record_max_ms=3000)),
    ):
        print(f"\n{label}")
        print(
            f"{'codec':10} {'tracks':8} {'records/min':>12} {'PUT units/min':>14} {'minimum':>8} {'over min':>9}"
        )
        for codec, rate, tracks in cases:
            r = measure(codec, rate, tracks, cfg)
            print(
                f"{codec + ' ' + str(rate // 1000) + 'k':10} {len(tracks):8} {r['records/min']:12.1f} {r['units/min']:14.1f} {r['minimum units/min']:8.1f} {r['overhead']:9.0%}"
            )


if __name__ == "__main__":
    main()
