import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.audio import codecs
from callstream.exceptions import InvalidAudioError

# --- an independent reference: ITU-T G.191 STL g711.c (ulaw_compress / ulaw_expand), line by line


def ref_ulaw_compress(x: int) -> int:
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    y = (high_nibble << 4) | low_nibble
    if x >= 0:
        y |= 0x0080
    return y


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x0080 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def test_decode_matches_reference_for_all_256_codes():
    decoded = np.frombuffer(codecs.ulaw_decode(bytes(range(256))), dtype="<i2")
    assert decoded.tolist() == [ref_ulaw_expand(c) for c in range(256)]


def test_encode_matches_reference_for_all_65536_values():
    every = np.arange(-32768, 32768, dtype="<i2")
    encoded = codecs.ulaw_encode(every.tobytes())
    assert list(encoded) == [ref_ulaw_compress(int(v)) for v in every]


def test_known_vectors():
    assert codecs.ulaw_decode(b"\x00\x80\xff\x7f") == pcm(-32124, 32124, 0, 0)
    assert codecs.ulaw_encode(pcm(0, 32767, -32768)) == b"\xff\x80\x00"


@given(st.binary(max_size=200))
def test_decode_then_encode_is_identity_on_decoded_values(codes):
    decoded = codecs.ulaw_decode(codes)
    assert codecs.ulaw_decode(codecs.ulaw_encode(decoded)) == decoded


@given(st.lists(st.integers(-32768, 32767), max_size=200))
def test_encode_quantises_to_the_nearest_level_within_its_segment(samples):
    data = pcm(*samples)
    back = np.frombuffer(codecs.ulaw_decode(codecs.ulaw_encode(data)), dtype="<i2")
    for original, level in zip(samples, back.tolist(), strict=True):
        # the quantisation step doubles per segment; the error is at most one step (≤ 1024)
        assert abs(original - level) <= max(8, abs(original) // 16 + 132)


@given(st.binary(max_size=200).filter(lambda b: len(b) % 2 == 0))
def test_l16_swap_is_an_involution_and_swaps(data):
    swapped = codecs.l16_swap(data)
    assert codecs.l16_swap(swapped) == data
    pairs = (data[i + 1 : i + 2] + data[i : i + 1] for i in range(0, len(data), 2))
    assert swapped == b"".join(pairs)


@pytest.mark.parametrize("call", [codecs.l16_swap, codecs.ulaw_encode])
def test_odd_length_is_refused_with_the_length(call):
    with pytest.raises(InvalidAudioError, match="321 bytes"):
        call(b"\x00" * 321)


def sine(freq: float, rate: int, seconds: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2").tobytes()


def peak_hz(data: bytes, rate: int) -> float:
    x = np.frombuffer(data, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


RATE_PAIRS = [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000)]


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_resample_keeps_length_ratio_and_frequency(src, dst):
    tone = sine(440, src)
    out = codecs.resample(tone, src, dst)
    assert abs(len(out) // 2 - len(tone) // 2 * dst // src) <= 2
    assert abs(peak_hz(out, dst) - 440) < 5


def test_resample_same_rate_is_identity_and_bad_rates_are_refused():
    tone = sine(300, 8000)
    assert codecs.resample(tone, 8000, 8000) == tone
    with pytest.raises(InvalidAudioError, match="12345"):
        codecs.resample(tone, 12345, 8000)
    with pytest.raises(InvalidAudioError, match="22050 is not one of \\[8000, 16000, 24000\\]"):
        codecs.resample(tone, 8000, 22050)  # a voice's rate is no stream's
    assert abs(len(codecs.resample(tone, 22050, 8000)) - len(tone) * 8000 // 22050) <= 4


def test_streaming_resampler_matches_length_of_one_shot():
    tone = sine(440, 8000, 1.0)
    stream = codecs.Resampler(8000, 16000)
    pieces = [stream.process(tone[i : i + 320]) for i in range(0, len(tone), 320)]
    pieces.append(stream.process(b"", last=True))
    joined = b"".join(pieces)
    assert abs(len(joined) - 2 * len(tone)) <= 8
    assert abs(peak_hz(joined, 16000) - 440) < 5


def test_helpers():
    assert codecs.frame_bytes("mulaw", 8000) == 160
    assert codecs.frame_bytes("l16", 16000) == 640
    assert codecs.silence("mulaw", 3) == b"\xff\xff\xff"
    assert codecs.silence("l16", 2) == bytes(4)
    assert codecs.to_pcm16("mulaw", b"\xff") == pcm(0)
    assert codecs.from_pcm16("l16", pcm(5)) == pcm(5)
