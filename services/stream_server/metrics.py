"""CloudWatch metrics of a stream-server task, as EMF lines on stdout (Powertools ``Metrics``).

Counters are reported as deltas per interval (CloudWatch sums them); gauges as the value now.
``ActiveStreams`` (average per task) drives the ECS service's target-tracking autoscaling.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "callstream"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class ServerCounters:
    """Everything the server counts; the emitter reports deltas since its last line."""

    sessions: int = 0
    frames: int = 0
    gaps: int = 0
    lost_frames: int = 0
    auth_failures: int = 0
    kinesis_retries: int = 0  # running totals of the writers, set before each line
    backpressure_s: float = 0.0
    recognition_restarts: int = 0  # running totals of live recognition, set before each line
    recognition_dropped_s: float = 0.0
    recognition_refused: int = 0  # tracks live recognition gave up (Transcribe's quota)
    errors: Counter[str] = field(default_factory=Counter)
    #: L16 tracks by the byte order their audio was found in (Vobiz's documentation and its
    #: own code disagree: this says which the deployment really gets).
    byte_orders: Counter[str] = field(default_factory=Counter)


class MetricsEmitter:
    """Builds one EMF line per interval from the server's counters and gauges."""

    def __init__(self, service: str = "stream_server") -> None:
        """Create the emitter (one per process)."""
        self._metrics = Metrics(namespace=NAMESPACE, service=service)
        self._last = ServerCounters()

    def emit(
        self,
        counters: ServerCounters,
        *,
        active_streams: int,
        buffered_records: int,
        put_latencies_ms: list[float],
        unacked_audio_s: float = 0.0,
    ) -> None:
        """Print one EMF line (to stdout, where the awslogs driver sends it to CloudWatch)."""
        last = self._last
        count, ms = MetricUnit.Count, MetricUnit.Milliseconds
        values: list[tuple[str, MetricUnit, float]] = [
            ("ActiveStreams", count, active_streams),
            ("BufferedRecords", count, buffered_records),
            # the most audio one stream has not yet in Kinesis: what a crash would lose now
            ("UnackedAudioSeconds", MetricUnit.Seconds, unacked_audio_s),
            ("StreamsStarted", count, counters.sessions - last.sessions),
            ("FramesIn", count, counters.frames - last.frames),
            ("Gaps", count, counters.gaps - last.gaps),
            ("LostFrames", count, counters.lost_frames - last.lost_frames),
            ("AuthFailures", count, counters.auth_failures - last.auth_failures),
            ("DecodeErrors", count, counters.errors.total() - last.errors.total()),
            ("KinesisRetries", count, counters.kinesis_retries - last.kinesis_retries),
            (
                "BackpressureSeconds",
                MetricUnit.Seconds,
                counters.backpressure_s - last.backpressure_s,
            ),
            (
                "RecognitionRestarts",
                count,
                counters.recognition_restarts - last.recognition_restarts,
            ),
            # audio live recognition could not take (a worker minutes behind): per utterance then
            (
                "RecognitionDroppedSeconds",
                MetricUnit.Seconds,
                counters.recognition_dropped_s - last.recognition_dropped_s,
            ),
            # tracks sent per utterance because Transcribe refused them (its stream quota)
            (
                "RecognitionRefused",
                count,
                counters.recognition_refused - last.recognition_refused,
            ),
        ]
        for order in ("big", "little"):
            found = counters.byte_orders[order] - last.byte_orders[order]
            values.append((f"L16{order.capitalize()}EndianTracks", count, found))
        if put_latencies_ms:
            values.append(("PutLatencyP50", ms, percentile(put_latencies_ms, 0.5)))
            values.append(("PutLatencyP99", ms, percentile(put_latencies_ms, 0.99)))
        for name, unit, value in values:
            self._metrics.add_metric(name=name, unit=unit, value=value)
        self._metrics.flush_metrics()
        self._last = ServerCounters(
            sessions=counters.sessions,
            frames=counters.frames,
            gaps=counters.gaps,
            lost_frames=counters.lost_frames,
            auth_failures=counters.auth_failures,
            kinesis_retries=counters.kinesis_retries,
            backpressure_s=counters.backpressure_s,
            recognition_restarts=counters.recognition_restarts,
            recognition_dropped_s=counters.recognition_dropped_s,
            recognition_refused=counters.recognition_refused,
            errors=Counter(counters.errors),
            byte_orders=Counter(counters.byte_orders),
        )
