import itertools

import pytest

from callstream.adapters.dynamodb import DynamoLeases, DynamoOnceStore, DynamoRegistry


def test_states_only_move_forward_and_fields_merge(aws):
    registry = DynamoRegistry(aws["dynamodb"], "Registry")
    registry.create_requested("s-1", "c-1", audio_track="both", at="2026-01-01T00:00:00Z")
    # a StopStream callback overtakes the server's start
    assert registry.advance("s-1", "c-1", "stopped", end_reason="callback", at="t3")
    registry.mark_started(
        "s-1", "c-1", codec="mulaw", sample_rate=8000, tracks=["inbound"], at="t2"
    )
    item = registry.get("s-1")
    assert item is not None
    assert (item.state, item.codec, item.sample_rate, item.tracks) == (
        "stopped",
        "mulaw",
        8000,
        ["inbound"],
    )
    assert (item.created_at, item.started_at, item.stopped_at) == (
        "2026-01-01T00:00:00Z",
        "t2",
        "t3",
    )
    assert not registry.advance("s-1", "c-1", "started")  # duplicate: no change
    registry.create_requested("s-1", "c-1", audio_track="inbound", at="later")
    item = registry.get("s-1")
    assert item is not None and item.audio_track == "both" and item.state == "stopped"


def test_list_for_call_and_unknown(aws):
    registry = DynamoRegistry(aws["dynamodb"], "Registry")
    registry.create_requested("s-2", "c-9", at="2026-01-01T00:00:02Z")
    registry.create_requested("s-1", "c-9", at="2026-01-01T00:00:01Z")
    registry.create_requested("s-3", "c-other", at="2026-01-01T00:00:03Z")
    assert [i.stream_id for i in registry.list_for_call("c-9")] == ["s-1", "s-2"]
    assert registry.get("nope") is None


def test_once_store_claims_once(aws):
    once = DynamoOnceStore(aws["dynamodb"], "Nonces")
    assert once.claim("jti#1", 60)
    assert not once.claim("jti#1", 60)
    assert once.claim("jti#2", 60)


@pytest.mark.parametrize("order", list(itertools.permutations(["session", "recording", "summary"])))
def test_how_a_stream_ended_is_recorded_whole_in_any_order(aws, order):
    """Issue 22: with a listening agent the session records its end up to 5 s after
    store_recording and finalize_call have moved the stream to ``stopped``; the end reason and
    ``stopped_at`` were then never written."""
    registry = DynamoRegistry(aws["dynamodb"], "Registry")
    registry.mark_started("s-1", "c-1", codec="mulaw", at="t1")
    writers = {  # what each of them writes, as the session, store_recording and finalize_call do
        "session": lambda: registry.mark_ended(
            "s-1", "c-1", state="stopped", end_reason="stop", frames=250, gaps=1, at="t9"
        ),
        "recording": lambda: registry.advance(
            "s-1", "c-1", "stopped", recording_key="recordings/s-1.wav", end_reason=None
        ),
        "summary": lambda: registry.advance(
            "s-1", "c-1", "stopped", transcript_key="summaries/c-1/s-1.json"
        ),
    }
    for writer in order:
        writers[writer]()
    item = registry.get("s-1")
    assert item is not None
    assert (item.state, item.end_reason, item.stopped_at) == ("stopped", "stop", "t9")
    assert (item.frames, item.gaps) == (250, 1)
    assert item.recording_key == "recordings/s-1.wav"
    assert item.transcript_key == "summaries/c-1/s-1.json"


def test_an_earlier_connections_late_end_writes_nothing_on_the_reconnect(aws):
    registry = DynamoRegistry(aws["dynamodb"], "Registry")
    registry.mark_started("s-1", "c-1", at="t1")
    registry.mark_started("s-1", "c-1", generation=2, at="t5")  # the reconnect came first
    registry.mark_ended("s-1", "c-1", state="stopped", end_reason="close", at="t4")
    item = registry.get("s-1")
    assert item is not None and (item.state, item.end_reason, item.stopped_at) == (
        "started",
        None,
        None,
    )
    registry.mark_ended("s-1", "c-1", state="stopped", end_reason="stop", generation=2, at="t9")
    item = registry.get("s-1")
    assert item is not None and (item.state, item.end_reason, item.stopped_at) == (
        "stopped",
        "stop",
        "t9",
    )


def test_a_lease_carries_vobizs_clock_to_the_reconnect_and_forgets_a_stale_one(aws):
    """The reconnect measures its outage from the clock the last connection left; a connection
    without timestamps must not leave an earlier one's behind (it would measure the next
    outage from the wrong place on the call)."""
    leases = DynamoLeases(aws["dynamodb"], "Nonces")
    first = leases.acquire("jti-1", "task-a", 30)
    assert first is not None and first.media_clock_ms is None
    leases.release(
        "jti-1",
        "task-a",
        stream_id="s-1",
        vobiz_stream_id="v-1",
        position_ms=12000.0,
        media_clock_ms=1_732_450_012_000.5,
    )
    second = leases.acquire("jti-1", "task-b", 30)
    assert second is not None and second.generation == 2
    assert (second.position_ms, second.media_clock_ms) == (12000.0, 1_732_450_012_000.5)
    leases.release("jti-1", "task-b", stream_id="s-1", vobiz_stream_id="v-2", position_ms=15000.0)
    third = leases.acquire("jti-1", "task-c", 30)
    assert third is not None and (third.generation, third.media_clock_ms) == (3, None)
