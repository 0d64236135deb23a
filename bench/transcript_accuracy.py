"""Word error rate and sentiment agreement on the shared support call, with the local backends.

Run: .venv/bin/python -m bench.transcript_accuracy

Three ways in, each transcribed by PocketSphinx (the ``local`` transcriber) and scored by VADER
(the ``local`` sentiment model):

* ``script spans, L16 16 kHz``: the true utterance spans of support_call.json, 16 kHz audio;
* ``script spans, μ-law 8 kHz``: the same spans after a μ-law round trip at 8 kHz;
* ``pipeline, <codec>``: the session tape through the real assembler and voice-activity
  segmenter, i.e. exactly the utterances the stream server would put on UtteranceStream.
"""

import json
import re
import time
from pathlib import Path

from callstream.adapters.sentiment_models import VaderModel
from callstream.adapters.transcribe_local import PocketSphinxTranscriber
from callstream.audio import codecs
from callstream.audio.assembler import Assembler
from callstream.audio.events import utterances as utterances_of
from callstream.audio.protocol import parse_message
from callstream.audio.vad import Segmenter
from callstream.vocabulary import AudioLimits
from local.vobiz_frames import read_wav

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "samples"
TAPES = ROOT / "events" / "tapes"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: total edits over total reference words."""
    edits = sum(edit_distance(words(r), words(h)) for r, h in zip(refs, hyps, strict=True))
    return edits / max(1, sum(len(words(r)) for r in refs))


def script() -> list[dict]:
    return json.loads((AUDIO / "support_call.json").read_text())["utterances"]


def spans(rate: int, mulaw: bool) -> list[tuple[dict, bytes]]:
    out = []
    pcm = {t: read_wav(AUDIO / f"support_call_{rate}_{t}.wav")[0] for t in ("inbound", "outbound")}
    for u in script():
        audio = pcm[u["track"]][int(u["start_s"] * rate) * 2 : int(u["end_s"] * rate) * 2]
        if mulaw:
            audio = codecs.ulaw_decode(codecs.ulaw_encode(audio))
        out.append((u, audio))
    return out


def pipeline(tape: str) -> list[tuple[dict, bytes, int]]:
    """The tape through the assembler + VAD; each utterance matched to the script by overlap."""
    cfg = AudioLimits()
    asm = Assembler(limits=cfg, segmenter_factory=lambda r, t: Segmenter(r, t, cfg))
    found = []
    for line in (TAPES / f"{tape}.jsonl").read_text().splitlines():
        asm.receive(parse_message(line))
        found += utterances_of(asm.events_ready())
    out = []
    for u in script():
        mine = [
            f
            for f in found
            if f.track == u["track"]
            and min(f.end_ms, u["end_s"] * 1000) > max(f.start_ms, u["start_s"] * 1000)
        ]
        out.append(
            (
                u,
                b"".join(f.payload for f in sorted(mine, key=lambda f: f.start_sample)),
                mine[0].sample_rate if mine else 8000,
            )
        )
    return out


def evaluate(label: str, items: list[tuple[dict, bytes, int]], recogniser, sentiment) -> dict:
    began = time.perf_counter()
    hyps = [recogniser.transcribe(audio, rate, "en-US").text for _, audio, rate in items]
    elapsed = time.perf_counter() - began
    refs = [u["text"] for u, _, _ in items]
    labels = [sentiment.score(h, "en-US").label for h in hyps]
    agree = sum(lab == u["sentiment"] for lab, (u, _, _) in zip(labels, items, strict=True))
    audio_s = sum(len(a) / 2 / r for _, a, r in items)
    per_track = {
        t: word_error_rate(
            [r for r, (u, _, _) in zip(refs, items, strict=True) if u["track"] == t],
            [h for h, (u, _, _) in zip(hyps, items, strict=True) if u["track"] == t],
        )
        for t in ("inbound", "outbound")
    }
    return {
        "way in": label,
        "wer": word_error_rate(refs, hyps),
        "wer_inbound": per_track["inbound"],
        "wer_outbound": per_track["outbound"],
        "sentiment_agree": agree,
        "utterances": len(items),
        "rtf": elapsed / audio_s,
        "hyps": hyps,
        "labels": labels,
    }


def run() -> list[dict]:
    recogniser, sentiment = PocketSphinxTranscriber(), VaderModel()
    return [
        evaluate(
            "script spans, L16 16 kHz",
            [(u, a, 16000) for u, a in spans(16000, False)],
            recogniser,
            sentiment,
        ),
        evaluate(
            "script spans, μ-law 8 kHz",
            [(u, a, 8000) for u, a in spans(8000, True)],
            recogniser,
            sentiment,
        ),
        evaluate(
            "pipeline, L16 16 kHz tape", pipeline("support_call_l16_16k"), recogniser, sentiment
        ),
        evaluate(
            "pipeline, μ-law 8 kHz tape", pipeline("support_call_mulaw_8k"), recogniser, sentiment
        ),
    ]


def main() -> None:
    rows = run()
    print(f"{'way in':30} {'WER':>6} {'inbound':>8} {'outbound':>9} {'sentiment':>10} {'RTF':>6}")
    for r in rows:
        print(
            f"{r['way in']:30} {r['wer']:6.1%} {r['wer_inbound']:8.1%} {r['wer_outbound']:9.1%} {r['sentiment_agree']:>6}/{r['utterances']:<3} {r['rtf']:6.2f}"
        )
    print()
    for u, h, lab in zip(script(), rows[-1]["hyps"], rows[-1]["labels"], strict=True):
        print(f"  [{u['track']:8}] {u['sentiment']:8} → {lab:8} {h}")


if __name__ == "__main__":
    main()
