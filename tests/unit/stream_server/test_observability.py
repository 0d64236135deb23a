"""EMF metrics lines and structured JSON logs of the stream server."""

import io
import json
import logging
from contextlib import redirect_stdout

from stream_server.logs import configure_logging
from stream_server.metrics import MetricsEmitter, ServerCounters, percentile


def test_emf_line_has_the_metrics_as_deltas():
    emitter = MetricsEmitter()
    counters = ServerCounters(
        sessions=3, frames=500, gaps=1, auth_failures=2, kinesis_retries=1, backpressure_s=0.5
    )
    counters.errors.update({"invalid_audio": 4})
    out = io.StringIO()
    with redirect_stdout(out):
        emitter.emit(
            counters,
            active_streams=3,
            buffered_records=7,
            put_latencies_ms=[5, 10, 50],
        )
        counters.frames += 100
        counters.kinesis_retries += 2  # the writers' running totals grow: lines carry the change
        counters.backpressure_s += 1.25
        counters.recognition_restarts += 1  # a recognition worker died and was replaced
        counters.recognition_dropped_s += 2.5
        counters.recognition_refused += 3  # Transcribe's quota: three tracks per utterance
        emitter.emit(
            counters,
            active_streams=2,
            buffered_records=0,
            put_latencies_ms=[],
        )
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    names = {m["Name"] for m in first["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {
        "ActiveStreams",
        "FramesIn",
        "Gaps",
        "AuthFailures",
        "DecodeErrors",
        "PutLatencyP99",
        "BackpressureSeconds",
    } <= names
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "callstream"
    assert (
        first["FramesIn"] == [500.0]
        and first["DecodeErrors"] == [4.0]
        and first["PutLatencyP99"] == [50.0]
    )
    assert (
        second["FramesIn"] == [100.0]
        and second["ActiveStreams"] == [2.0]
        and "PutLatencyP99" not in second
    )
    assert (first["KinesisRetries"], second["KinesisRetries"]) == ([1.0], [2.0])
    assert (first["BackpressureSeconds"], second["BackpressureSeconds"]) == ([0.5], [1.25])
    assert (first["RecognitionRestarts"], second["RecognitionRestarts"]) == ([0.0], [1.0])
    assert second["RecognitionDroppedSeconds"] == [2.5]
    assert (first["RecognitionRefused"], second["RecognitionRefused"]) == ([0.0], [3.0])
    assert second["service"] == "stream_server"


def test_percentile():
    assert percentile([], 0.99) == 0.0
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(101)), 0.99) == 99


def test_log_lines_are_json_with_call_and_stream_ids():
    out = io.StringIO()
    with redirect_stdout(out):
        configure_logging("INFO")
        logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]
        logger = logging.getLogger("callstream.session")
        logger.setLevel(logging.INFO)  # whatever a Powertools "callstream" logger left behind
        adapter = logging.LoggerAdapter(logger, {"call_uuid": "c-1", "stream_id": "s-1"})
        adapter.info("stream started: %s", "mulaw")
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["message"] == "stream started: mulaw"
    assert (line["call_uuid"], line["stream_id"], line["level"]) == ("c-1", "s-1", "INFO")
    logging.getLogger().handlers.clear()
    logger.setLevel(logging.NOTSET)


def test_the_redactor_hides_registered_secrets_and_audio_but_not_ids(caplog):
    import base64 as b64

    from callstream import logsafety

    redactor = logsafety.Redactor()
    redactor.register("s3cr3t-token-value")
    redactor.register("short")  # too short to be worth matching: ids would be mangled
    audio = b64.b64encode(bytes(range(256)) * 2).decode()
    record = logging.LogRecord(
        "botocore",
        logging.DEBUG,
        __file__,
        1,
        "body %s key=%s id=%s",
        (audio, "s3cr3t-token-value", "short-id-42"),
        None,
    )
    assert redactor.filter(record) is True
    message = record.getMessage()
    assert "s3cr3t-token-value" not in message and audio not in message
    assert "[redacted]" in message and f"[base64: {len(audio)} chars]" in message
    assert "short-id-42" in message


def test_library_loggers_are_capped_whatever_the_root_level():
    from callstream import logsafety

    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.NOTSET)
    logsafety.cap_libraries()
    assert not logging.getLogger("botocore").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)
