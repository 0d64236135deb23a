"""The sweeper ends the streams of a task that died, and leaves a live task's streams alone."""

import boto3

from callstream import wiring
from callstream.adapters.dynamodb import DynamoRegistry
from callstream.analytics import sweeper
from callstream.audio import records
from stream_server.internal_api import InternalApi
from tests.conftest import read_stream


def test_streams_of_a_dead_task_are_closed_and_recorded(aws, monkeypatch):
    monkeypatch.setenv("CALLSTREAM_REGISTRY_TABLE", "Registry")
    monkeypatch.setenv("CALLSTREAM_AUDIO_STREAM", "AudioStream")
    monkeypatch.setenv("CALLSTREAM_UTTERANCE_STREAM", "UtteranceStream")
    monkeypatch.setenv("CALLSTREAM_TRANSCRIPTS_TABLE", "Transcripts")
    wiring.reset()
    import asyncio

    loop = asyncio.new_event_loop()
    live_task = InternalApi("127.0.0.1", 0, lambda _: None, lambda s, h: None, loop)
    live_task.start()
    try:
        registry = DynamoRegistry(boto3.client("dynamodb", region_name="us-east-1"), "Registry")
        registry.mark_started("s-dead", "c-1", task_address="http://127.0.0.1:9", at="t")
        registry.mark_started(
            "s-live", "c-1", task_address=f"http://127.0.0.1:{live_task.port}", at="t"
        )
        registry.mark_started("s-done", "c-1", task_address="http://127.0.0.1:9", at="t")
        registry.mark_ended("s-done", "c-1", state="stopped", end_reason="stop", at="t")
        assert sweeper.sweep(wiring.sweeper_services(), now=1_800_000_000) == ["s-dead"]
    finally:
        live_task.stop()
        loop.close()
    (end,) = [records.decode(d) for _, d in read_stream(aws["kinesis"], "AudioStream")]
    assert isinstance(end, records.EventRecord)
    assert (end.stream_id, end.name, end.data["reason"], end.seq) == (
        "s-dead",
        "close",
        "swept",
        sweeper.SWEEP_SEQ,
    )
    dead, live = registry.get("s-dead"), registry.get("s-live")
    assert dead is not None and (dead.state, dead.end_reason) == ("stopped", "swept")
    assert live is not None and live.state == "started"
