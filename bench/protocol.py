"""Parse cost of one Vobiz media message, callstream's parser against the alternatives.

Run: .venv/bin/python -m bench.protocol

Every candidate does the same work: JSON → typed fields, base64 payload → bytes, track checked.
"""

import base64
import binascii
import json
import timeit
from typing import Literal

import msgspec
import pydantic

from callstream.audio.protocol import parse_message


def media_frame(payload_bytes: int) -> bytes:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": 7,
            "streamId": "b7c1d2e3-0000-4f00-8000-123456789abc",
            "media": {
                "track": "inbound",
                "timestamp": "1732450000123",
                "chunk": 6,
                "payload": base64.b64encode(bytes(i % 256 for i in range(payload_bytes))).decode(),
            },
        }
    ).encode()


def stdlib_json(data: bytes) -> tuple[str, bytes]:
    doc = json.loads(data)
    media = doc["media"]
    if media["track"] not in ("inbound", "outbound"):
        raise ValueError("track")
    return media["track"], binascii.a2b_base64(media["payload"], strict_mode=True)


def msgspec_untyped(data: bytes) -> tuple[str, bytes]:
    media = msgspec.json.decode(data)["media"]
    if media["track"] not in ("inbound", "outbound"):
        raise ValueError("track")
    return media["track"], binascii.a2b_base64(media["payload"], strict_mode=True)


class PMedia(pydantic.BaseModel):
    track: Literal["inbound", "outbound"]
    timestamp: int | str | None = None
    chunk: int | None = None
    payload: pydantic.Base64Bytes


class PMessage(pydantic.BaseModel):
    event: Literal["media"]
    streamId: str | None = None  # noqa: N815
    sequenceNumber: int | None = None  # noqa: N815
    media: PMedia


def pydantic_parse(data: bytes) -> PMessage:
    return PMessage.model_validate_json(data)


def run(number: int = 20_000) -> list[tuple[str, int, float]]:
    rows = []
    for label, size in (("μ-law 8 kHz (160 B)", 160), ("L16 16 kHz (640 B)", 640)):
        frame = media_frame(size)
        for name, fn in (
            ("callstream (msgspec)", parse_message),
            ("stdlib json + binascii", stdlib_json),
            ("pydantic v2", pydantic_parse),
            ("msgspec untyped + binascii", msgspec_untyped),
        ):
            fn(frame)
            best = min(timeit.repeat(lambda f=fn, d=frame: f(d), number=number, repeat=5))
            rows.append((f"{label}: {name}", size, best / number * 1e6))
    return rows


def main() -> None:
    print(f"{'message / parser':58} {'µs per message':>15}")
    for name, _, micros in run():
        print(f"{name:58} {micros:15.2f}")


if __name__ == "__main__":
    main()
