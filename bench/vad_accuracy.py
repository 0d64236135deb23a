"""Voice-activity accuracy on the shared support call, per detector and setting.

Run: .venv/bin/python -m bench.vad_accuracy

For each track of samples/support_call (16 kHz L16, and 8 kHz after a μ-law round trip)
the segmenter runs frame by frame; each expected utterance of support_call.json is matched to
the detected one that overlaps it most. Reported: utterances found / expected / matched, and the
mean and max absolute error of the emitted start (pre-roll included) and end against the
script's, in ms, plus the cost per 20 ms frame. (The script's spans include 150-340 ms of
leading and ~150 ms of trailing padding around the voice: the pre-roll and tail cover them.)
"""

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from callstream.audio import codecs
from callstream.audio.vad import Segmenter, Utterance
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import read_wav

AUDIO = Path(__file__).resolve().parents[1] / "samples"


@dataclass
class Score:
    found: int = 0
    expected: int = 0
    matched: int = 0
    onset_errors: list[float] | None = None
    end_errors: list[float] | None = None
    frame_us: float = 0.0


def energy_detector(threshold_db: float):
    def is_speech(frame: bytes) -> bool:
        x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        rms = np.sqrt(np.mean(x * x)) + 1e-9
        return bool(20 * np.log10(rms / 32768) > threshold_db)

    return is_speech


def segment(pcm: bytes, rate: int, track: str, cfg: AudioLimits, detector=None):
    seg = Segmenter(rate, track, cfg, detector=detector)
    frame = rate // 50 * 2
    began = time.perf_counter()
    out: list[Utterance] = []
    for i in range(0, len(pcm), frame):
        seg.receive(pcm[i : i + frame], i // 2)
        out += seg.utterances_ready()
    out += seg.close()
    frames = len(pcm) // frame
    return out, (time.perf_counter() - began) / frames * 1e6


def score(found: list[Utterance], expected: list[dict], score: Score) -> None:
    score.found += len(found)
    score.expected += len(expected)
    for want in expected:
        start, end = want["start_s"] * 1000, want["end_s"] * 1000
        overlaps = [(min(end, u.end_ms) - max(start, u.start_ms), u) for u in found]
        overlaps = [(o, u) for o, u in overlaps if o > 0]
        if not overlaps:
            continue
        _, best = max(overlaps, key=lambda pair: pair[0])
        score.matched += 1
        score.onset_errors.append(abs(best.start_ms - start))
        score.end_errors.append(abs(best.end_ms - end))


def run(configs):
    script = json.loads((AUDIO / "support_call.json").read_text())
    rows = []
    for label, cfg, detector in configs:
        for variant in ("L16 16 kHz", "μ-law 8 kHz"):
            result = Score(onset_errors=[], end_errors=[])
            costs = []
            for track in ("inbound", "outbound"):
                rate = 16000 if variant.startswith("L16") else 8000
                pcm, _ = read_wav(AUDIO / f"support_call_{rate}_{track}.wav")
                if rate == 8000:
                    pcm = codecs.ulaw_decode(codecs.ulaw_encode(pcm))
                found, cost = segment(pcm, rate, track, cfg, detector)
                costs.append(cost)
                score(found, [u for u in script["utterances"] if u["track"] == track], result)
            result.frame_us = sum(costs) / len(costs)
            rows.append((label, variant, result))
    return rows


def main():
    base = AudioLimits()
    configs = [
        (
            f"webrtc mode {m}, end {e} ms",
            replace(base, vad_mode=m, vad_end_ms=e),
            None,
        )
        for m in (1, 2, 3)
        for e in (300, 500)
    ]
    configs += [(f"energy > {t} dBFS", base, energy_detector(t)) for t in (-45, -35)]
    print(
        f"{'detector':28} {'audio':12} {'found':>5} {'match':>5} {'start err ms (mean/max)':>24} {'end err ms (mean/max)':>22} {'µs/frame':>9}"
    )
    for label, variant, s in run(configs):
        onset = (
            f"{np.mean(s.onset_errors):.0f} / {np.max(s.onset_errors):.0f}"
            if s.onset_errors
            else "-"
        )
        end = f"{np.mean(s.end_errors):.0f} / {np.max(s.end_errors):.0f}" if s.end_errors else "-"
        print(
            f"{label:28} {variant:12} {s.found:>5} {s.matched:>2}/{s.expected:<2} {onset:>24} {end:>22} {s.frame_us:9.1f}"
        )


if __name__ == "__main__":
    main()
