"""The record format: exact round trips, precise refusals, and the PUT-unit budget."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.audio import records
from callstream.exceptions import RecordError
from callstream.vocabulary import AudioLimits

ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=128)


@given(
    ids,
    st.one_of(st.none(), ids),
    st.integers(0, 2**63 - 1),
    st.binary(max_size=2000),
    st.sampled_from(["mulaw", "l16"]),
)
def test_audio_records_round_trip(stream, call, seq, payload, codec):
    record = records.AudioRecord(
        stream_id=stream,
        call_uuid=call,
        seq=seq,
        track="inbound",
        codec=codec,
        sample_rate=8000,
        first_frame=seq,
        frames=3,
        start_sample=seq,
        payload=payload,
    )
    assert records.decode(records.encode(record)) == record


@given(
    ids,
    st.dictionaries(
        st.text(max_size=10), st.one_of(st.integers(0, 2**60), st.text(max_size=20), st.booleans())
    ),
)
def test_event_records_round_trip(stream, data):
    record = records.EventRecord(stream_id=stream, seq=1, name="gap", at_ms=1.5, data=data)
    assert records.decode(records.encode(record)) == record


def test_utterance_record_round_trip():
    record = records.UtteranceRecord(
        stream_id="s",
        track="outbound",
        index=2,
        sample_rate=16000,
        start_sample=10,
        end_sample=20,
        split=True,
        payload=b"\x01\x00" * 10,
    )
    assert records.decode(records.encode(record)) == record


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "not a callstream record"),
        (b"XYZ\x01", "not a callstream"),
        (b"CSR\x09abc", "version 9"),
        (b"CSR\x01\xc1", "invalid record body"),
    ],
)
def test_bad_bytes_are_refused_precisely(data, needle):
    with pytest.raises(RecordError, match=needle):
        records.decode(data)


def test_a_full_record_fits_one_put_payload_unit_even_with_the_longest_ids():
    limit = AudioLimits().record_max_bytes
    worst = records.AudioRecord(
        stream_id="s" * 128,
        call_uuid="c" * 128,
        seq=2**63 - 1,
        track="outbound",
        codec="l16",
        sample_rate=16000,
        first_frame=2**63 - 1,
        frames=10**9,
        start_sample=2**63 - 1,
        media_timestamp=2**63 - 1,
        received_at=1.7e9 + 0.123456,
        payload=b"x" * limit,
    )
    assert len(records.encode(worst)) <= 25 * 1024


def test_the_longest_utterance_at_any_rate_fits_one_kinesis_record():
    """utterance_max_ms allows 60 s: at 24 kHz that is 2.9 MB of PCM, which Kinesis refuses;
    the cap at the rate keeps the record, with its widest ids, within 1 MiB."""
    from callstream.settings import AudioSettings
    from callstream.vocabulary import KINESIS_MAX_RECORD

    limits = AudioSettings(utterance_max_ms=60_000).limits()
    for rate in (8000, 16000, 24000):
        samples = limits.utterance_samples(rate)
        record = records.UtteranceRecord(
            stream_id="s" * 128,
            call_uuid="c" * 128,
            track="outbound",
            index=2**63 - 1,
            sample_rate=rate,
            start_sample=2**62,
            end_sample=2**62 + samples,
            split=True,
            source_codec="l16",
            received_at=1.7e9,
            payload=bytes(2 * samples),
        )
        assert len(records.encode(record)) + 128 <= KINESIS_MAX_RECORD  # the key counts too
    assert limits.utterance_samples(8000) == 60 * 8000  # at 8 kHz 60 s fits: not cut
    assert limits.utterance_samples(24000) < 60 * 24000
