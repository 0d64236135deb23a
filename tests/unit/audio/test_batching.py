"""Record sizing and the open record on their own: what one AudioStream record holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.audio.batching import OpenRecord, record_span
from callstream.audio.records import audio_header_bytes, decode, encode


def test_a_time_capped_mulaw_record_also_carries_what_fits_in_the_kilobyte_it_pays_for() -> None:
    span = record_span(1, 8000, 25_100, 1000, "s-1", "c-1")
    header = audio_header_bytes("s-1", "c-1")
    assert span > 8000 and span % 160 == 0  # past 1 s, in whole frames
    assert -(-(header + span) // 1024) == -(-(header + 8000) // 1024)  # no extra KB billed


def test_the_byte_cap_wins_over_the_time_cap_for_wide_audio() -> None:
    span = record_span(2, 24000, 25_100, 1000, "s-1", "c-1")
    assert span * 2 <= 25_100 and span % 480 == 0
    assert span < 24000  # 1 s of L16 24 kHz is 48 KB: the byte cap ends it


def test_a_record_holds_at_least_one_frame_whatever_the_caps() -> None:
    assert record_span(2, 16000, 10, 1, "s", None) == 320


@given(
    st.sampled_from([(1, 8000), (2, 8000), (2, 16000), (2, 24000)]),
    st.integers(320, 1_000_000),
    st.integers(20, 60_000),
    st.text("ab", min_size=1, max_size=128),
)
def test_any_caps_give_whole_frames_within_the_bytes(
    codec: tuple[int, int], max_bytes: int, max_ms: int, stream_id: str
) -> None:
    width, rate = codec
    span = record_span(width, rate, max_bytes, max_ms, stream_id, None)
    frame = rate // 50
    assert span % frame == 0 and span >= frame
    assert span * width <= max(max_bytes, frame * width)


def test_an_open_record_takes_consecutive_frames_until_full_then_starts_afresh() -> None:
    open_ = OpenRecord("inbound", max_bytes=480)
    assert not open_.add(7, b"\x01" * 160, 1120, 1_700_000_000_000, 5.0)
    assert not open_.add(8, b"\x02" * 160, 1280, None, 5.1)
    assert open_.fits(160) and not open_.fits(161)
    assert open_.add(9, b"\x03" * 160, 1440, None, 5.2)  # full
    record = open_.take(3, "s-1", "c-1", "mulaw", 8000)
    assert (record.first_frame, record.frames, record.start_sample) == (7, 3, 1120)
    assert record.media_timestamp == 1_700_000_000_000 and record.received_at == 5.0
    assert decode(encode(record)) == record
    assert not open_.buf and open_.frames == 0 and open_.fits(10_000)


@pytest.mark.parametrize("size", [1, 160, 10_000])
def test_an_empty_record_takes_any_first_frame(size: int) -> None:
    assert OpenRecord("outbound", max_bytes=160).fits(size)
