"""The Vobiz simulator's own wire code, written from docs/protocol.md (numpy, soxr and stdlib only).

Nothing here imports callstream: the simulator is the oracle the product is tested against, so it
must not share the product's codec, protocol, signature or XML code (a shared mistake would pass
every test). What it holds:

* G.711 μ-law encode/decode (the ITU-T G.191 reference rounding) and the L16 byte orders:
  inbound L16 is big-endian on the wire, ``playAudio`` L16 is little-endian (docs/protocol.md §2).
* Vobiz's request signatures, V3 (the SDK's string for GET and POST) and V2 (docs/protocol.md §3).
* The ``<Stream>`` answer XML read by Vobiz's rules (docs/protocol.md §1b): what Vobiz would do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import soxr

#: Content types Vobiz accepts, and what each means on the wire: (codec, rate).
CONTENT_TYPES: dict[str, tuple[str, int]] = {
    "audio/x-l16;rate=8000": ("l16", 8000),
    "audio/x-l16;rate=16000": ("l16", 16000),
    "audio/x-l16;rate=24000": ("l16", 24000),
    "audio/x-mulaw;rate=8000": ("mulaw", 8000),
}
ENCODINGS = {"mulaw": "audio/x-mulaw", "l16": "audio/x-l16"}

# -------------------------------------------------------------------------------- audio


@cache
def _mulaw_codes() -> npt.NDArray[np.uint8]:
    """The μ-law code of every int16 value (G.711 §3; G.191 ``ulaw_compress`` rounding)."""
    samples = np.arange(-32768, 32768, dtype=np.int32)
    # 14-bit magnitude: the one's complement for negatives, then the bias of 33, clipped.
    magnitude = np.minimum(np.where(samples < 0, (-samples - 1) >> 2, samples >> 2) + 33, 8191)
    exponent = np.floor(np.log2(magnitude >> 5)).astype(np.int32)  # magnitude ≥ 33: ≥ 1
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    code = 0x7F - ((exponent << 4) | mantissa)
    return np.where(samples >= 0, code | 0x80, code).astype(np.uint8)


@cache
def _mulaw_values() -> npt.NDArray[np.int16]:
    """The linear value of every μ-law code (G.711's expansion)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def mulaw_encode(pcm: bytes) -> bytes:
    """PCM16 little-endian → μ-law bytes."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return bytes(_mulaw_codes()[samples].tobytes())


def mulaw_decode(data: bytes) -> bytes:
    """μ-law bytes → PCM16 little-endian."""
    return bytes(_mulaw_values()[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes())


def to_big_endian(pcm: bytes) -> bytes:
    """PCM16 little-endian → L16 as Vobiz sends it inbound (network byte order)."""
    return bytes(np.frombuffer(pcm, dtype="<i2").astype(">i2").tobytes())


def resample(pcm: bytes, rate: int, to_rate: int) -> bytes:
    """Resample PCM16 LE mono (no-op when the rates are equal)."""
    if rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    out = soxr.resample(samples, rate, to_rate)
    return bytes(np.asarray(out, dtype="<i2").tobytes())


def encode_frame(pcm: bytes, codec: str, *, l16_little_endian: bool = False) -> bytes:
    """PCM16 LE → a media payload as Vobiz sends it (μ-law, or L16 big-endian as documented).

    ``l16_little_endian``: L16 as Vobiz's own reference code sends it (its ``mock_vobiz.py``
    and ``app.py`` treat inbound L16 as little-endian), the other witness of docs/protocol.md §2.
    """
    if codec == "mulaw":
        return mulaw_encode(pcm)
    return bytes(pcm) if l16_little_endian else to_big_endian(pcm)


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- signatures

Params = Mapping[str, str]


def _sorted_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def v3_string(method: str, url: str, params: Params) -> str:
    """The string Vobiz's V3 signature covers, before ``"." + nonce`` (docs/protocol.md §3)."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    own = parse_qsl(parts.query, keep_blank_values=True)
    if method.upper() == "GET":
        query = _sorted_query(own + list(params.items()))
        return f"{base}?{query}" if query else base
    query = _sorted_query(own)
    if not params:
        return f"{base}?{query}" if query else base
    body = "".join(f"{k}{v}" for k, v in sorted(params.items()))
    return f"{base}?{query}{'.' if query else ''}{body}"


def _hmac_b64(key: str, message: str) -> str:
    return b64(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest())


def sign_v3(auth_token: str, method: str, url: str, params: Params, nonce: str) -> str:
    """``X-Vobiz-Signature-V3`` of a request."""
    return _hmac_b64(auth_token, v3_string(method, url, params) + "." + nonce)


def sign_v3_url_only(auth_token: str, url: str, nonce: str) -> str:
    """The URL-only V3 form some Vobiz requests carry (it does not cover a POST body)."""
    return _hmac_b64(auth_token, url + "." + nonce)


def sign_v2(auth_token: str, url: str, nonce: str) -> str:
    """``X-Vobiz-Signature-V2``: HMAC-SHA256 of the URL followed by the nonce."""
    return _hmac_b64(auth_token, url + nonce)


# ---------------------------------------------------------------------------- answer XML


@dataclass
class StreamVerb:
    """A ``<Stream>`` element as Vobiz reads it."""

    url: str
    bidirectional: bool = False
    audio_track: str = "inbound"
    content_type: str = "audio/x-l16;rate=8000"
    keep_call_alive: bool = False
    max_retries: int = 0
    status_callback_url: str | None = None
    status_callback_method: str = "POST"
    extra_headers: str | None = None


@dataclass
class AnswerPlan:
    """What Vobiz does with an answer URL's XML.

    Attributes:
        stream: the stream to open, if any.
        hangup_cause: set when Vobiz would hang the call up instead of (or right after) opening
            the stream; the stream is then not kept open.
        after: the tags of the elements that follow the ``<Stream>`` (the rest of the call).
    """

    stream: StreamVerb | None
    hangup_cause: str | None = None
    after: list[str] = field(default_factory=list)


END_OF_XML = "End Of XML Instructions"


def read_answer(xml: str) -> AnswerPlan:
    """Interpret answer XML the way Vobiz documents it (docs/protocol.md §1b)."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - the product's own answer, on loopback
    except ET.ParseError as error:
        return AnswerPlan(None, f"invalid XML: {error}")
    if root.tag != "Response":
        return AnswerPlan(None, f"root element is <{root.tag}>, not <Response>")
    children = list(root)
    index = next((i for i, e in enumerate(children) if e.tag == "Stream"), None)
    if index is None:
        return AnswerPlan(None, END_OF_XML, [e.tag for e in children])
    element = children[index]
    attrs = {k.lower(): v for k, v in element.attrib.items()}

    def flag(name: str) -> bool:
        return attrs.get(name.lower(), "false").strip().lower() == "true"

    verb = StreamVerb(
        url=(element.text or "").strip(),
        bidirectional=flag("bidirectional"),
        audio_track=attrs.get("audiotrack", "inbound").strip().lower(),
        content_type=attrs.get("contenttype", "audio/x-l16;rate=8000").strip(),
        keep_call_alive=flag("keepCallAlive"),
        max_retries=int(attrs.get("maxretries", "0") or 0),
        status_callback_url=attrs.get("statuscallbackurl"),
        status_callback_method=attrs.get("statuscallbackmethod", "POST").upper(),
        extra_headers=attrs.get("extraheaders"),
    )
    after = [e.tag for e in children[index + 1 :]]
    if verb.bidirectional and verb.audio_track in ("both", "outbound"):
        return AnswerPlan(verb, END_OF_XML, after)
    if verb.content_type not in CONTENT_TYPES:
        return AnswerPlan(verb, f"unsupported contentType {verb.content_type}", after)
    if not (0 <= verb.max_retries <= 10):
        return AnswerPlan(verb, f"maxRetries {verb.max_retries} is not 0-10", after)
    keeps_alive = verb.keep_call_alive and verb.bidirectional
    if not after and not keeps_alive:
        return AnswerPlan(verb, END_OF_XML, after)
    return AnswerPlan(verb, None, after)
