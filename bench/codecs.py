"""Codec throughput: μ-law decode/encode and resampling, bulk (MB/s of input) and per frame.

Run: .venv/bin/python -m bench.codecs

The stream server decodes every μ-law frame for voice activity, so the cost of one 20 ms frame
(160 bytes) matters more than bulk throughput; playback resamples prompts in bulk.
"""

import timeit

import numpy as np

from callstream.audio import codecs


def rate(fn, data: bytes, number: int) -> tuple[float, float]:
    fn(data)
    best = min(timeit.repeat(lambda: fn(data), number=number, repeat=5)) / number
    return len(data) / best / 1e6, best * 1e6


def main() -> None:
    rng = np.random.default_rng(1)
    pcm8 = rng.integers(-20000, 20000, 8000 * 10, dtype=np.int16).astype("<i2").tobytes()  # 10 s
    pcm16 = rng.integers(-20000, 20000, 16000 * 10, dtype=np.int16).astype("<i2").tobytes()
    ulaw = codecs.ulaw_encode(pcm8)
    rows = [
        ("μ-law decode, 10 s bulk", *rate(codecs.ulaw_decode, ulaw, 200)),
        ("μ-law decode, one 20 ms frame", *rate(codecs.ulaw_decode, ulaw[:160], 20000)),
        ("μ-law encode, 10 s bulk", *rate(codecs.ulaw_encode, pcm8, 200)),
        ("μ-law encode, one 20 ms frame", *rate(codecs.ulaw_encode, pcm8[:320], 20000)),
        ("L16 byte swap, one 20 ms 16 kHz frame", *rate(codecs.l16_swap, pcm16[:640], 20000)),
        ("resample 8→16 kHz, 10 s", *rate(lambda d: codecs.resample(d, 8000, 16000), pcm8, 20)),
        ("resample 16→8 kHz, 10 s", *rate(lambda d: codecs.resample(d, 16000, 8000), pcm16, 20)),
        ("resample 8→24 kHz, 10 s", *rate(lambda d: codecs.resample(d, 8000, 24000), pcm8, 20)),
    ]
    print(f"{'operation':42} {'MB/s of input':>14} {'µs per call':>12}")
    for name, mbs, us in rows:
        print(f"{name:42} {mbs:14.1f} {us:12.2f}")


if __name__ == "__main__":
    main()
