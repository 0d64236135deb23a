"""Write the session tapes in events/tapes/ from samples/ (run: make tape).

A tape is a JSONL file of the text frames Vobiz would send for the shared support call, both
tracks: the 8 kHz WAVs in μ-law, the 16 kHz WAVs in L16. Tests replay them; regenerating gives
identical bytes (tests/unit/test_tapes.py checks that).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "shared")]

from local.vobiz_frames import CallAudio, WireCodec, messages, read_wav  # noqa: E402

AUDIO = ROOT / "samples"
TAPES = ROOT / "events" / "tapes"
#: tape name → (source sample rate, wire codec)
SPECS: dict[str, tuple[int, WireCodec]] = {
    "support_call_mulaw_8k": (8000, "mulaw"),
    "support_call_l16_16k": (16000, "l16"),
}


def tape_lines(name: str) -> list[str]:
    """The lines of one tape, built from the shared audio."""
    rate, codec = SPECS[name]
    tracks = {}
    for track in ("inbound", "outbound"):
        pcm, found = read_wav(AUDIO / f"support_call_{rate}_{track}.wav")
        assert found == rate, f"support_call_{rate}_{track}.wav is {found} Hz"
        tracks[track] = pcm
    audio = CallAudio(
        tracks=tracks, sample_rate=rate, stream_id=f"tape-{name}", call_id="tape-call"
    )
    return list(messages(audio, codec))


def main() -> None:
    TAPES.mkdir(parents=True, exist_ok=True)
    for name in SPECS:
        path = TAPES / f"{name}.jsonl"
        lines = tape_lines(name)
        path.write_text("\n".join(lines) + "\n")
        print(f"{path.relative_to(ROOT)}: {len(lines)} messages, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
