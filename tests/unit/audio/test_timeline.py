"""One track's timeline on its own: what it tells its placement, frame by frame.

Frames are 20 ms of 8 kHz μ-law (160 bytes, one byte a sample), each filled with its number so
that a placement can be traced back to the frame it came from.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callstream.audio.timeline import REORDER_FRAMES, REORDER_WAIT_S, RESTART_FRAMES, Timeline

FRAME = 160


def frame(n: int) -> bytes:
    return bytes([n % 256]) * FRAME


class Recorder:
    """A Placement that writes down what it is told."""

    def __init__(self) -> None:
        self.placements: list[tuple[int | None, int, int]] = []  # frame, first sample, its tag
        self.losses: list[tuple[int, int | None, int]] = []  # frames, first missing, samples
        self.restarts: list[tuple[int, int]] = []

    def placed(
        self, track: Timeline, frame: int | None, payload: bytes, timestamp: object, now: float
    ) -> None:
        self.placements.append((frame, track.last_frame_start, payload[0]))

    def lost(self, track: Timeline, frames: int, first_frame: int | None, now: float) -> None:
        self.losses.append((frames, first_frame, track.gap_samples))

    def restarted(self, track: Timeline, from_frame: int, to_frame: int, now: float) -> None:
        self.restarts.append((from_frame, to_frame))


def line() -> Timeline:
    timeline = Timeline("inbound", bytes_per_sample=1, frame_samples=FRAME)
    timeline.begin(0)
    return timeline


def feed(numbers: list[int | None], now: float = 0.0) -> tuple[Timeline, Recorder]:
    timeline, told = line(), Recorder()
    for n in numbers:
        timeline.receive(n, frame(n or 0), None, now, told)
    return timeline, told


def test_frames_in_order_follow_each_other() -> None:
    timeline, told = feed([1, 2, 3])
    assert told.placements == [(1, 0, 1), (2, 160, 2), (3, 320, 3)]
    assert timeline.position == 480 and told.losses == []


def test_a_swapped_pair_is_put_back_in_order_not_counted_lost() -> None:
    timeline, told = feed([1, 3, 2, 4])
    assert [p[0] for p in told.placements] == [1, 2, 3, 4]
    assert [p[1] for p in told.placements] == [0, 160, 320, 480]
    assert timeline.stats.reordered == 1 and timeline.stats.lost_frames == 0


def test_a_missing_frame_is_declared_lost_once_the_hold_is_full_and_time_stays_true() -> None:
    numbers: list[int | None] = [1, *range(3, 3 + REORDER_FRAMES + 1)]
    timeline, told = feed(numbers)
    assert told.losses == [(1, 2, FRAME)]  # frame 2, one frame long
    starts = dict((n, start) for n, start, _ in told.placements)
    assert starts[3] == 2 * FRAME  # after frame 1 and the gap where frame 2 belonged
    assert timeline.stats.gaps == 1 and timeline.stats.lost_frames == 1


def test_a_held_frame_waits_no_longer_than_the_reorder_wait() -> None:
    timeline, told = line(), Recorder()
    timeline.receive(1, frame(1), None, 0.0, told)
    timeline.receive(3, frame(3), None, 0.0, told)
    assert not timeline.due(REORDER_WAIT_S / 2)
    assert timeline.due(REORDER_WAIT_S)
    timeline.release(REORDER_WAIT_S, told)
    assert [p[0] for p in told.placements] == [1, 3] and told.losses == [(1, 2, FRAME)]


def test_a_duplicate_is_dropped_and_counted() -> None:
    timeline, told = feed([1, 2, 2, 3])
    assert [p[0] for p in told.placements] == [1, 2, 3]
    assert timeline.stats.duplicates == 1


def test_a_numbering_that_restarts_keeps_its_audio() -> None:
    far = 100 + RESTART_FRAMES + 1
    timeline, told = feed([far, far + 1, 0, 1])
    assert told.restarts == [(far + 2, 0)]
    assert [p[1] for p in told.placements] == [0, 160, 320, 480]  # nothing lost, nothing moved
    assert timeline.stats.restarts == 1


def test_frames_without_numbers_follow_each_other() -> None:
    _, told = feed([None, None])
    assert [p[1] for p in told.placements] == [0, 160]


def test_skip_moves_the_timeline_on_by_an_outage() -> None:
    timeline, told = line(), Recorder()
    timeline.receive(1, frame(1), None, 0.0, told)
    timeline.skip(10, 1600, 0.0, told)
    timeline.receive(2, frame(2), None, 0.0, told)
    assert told.losses == [(10, None, 1600)]
    assert told.placements[-1][1] == 160 + 1600


@given(st.permutations(list(range(2, 14))))
def test_any_shuffle_after_the_first_frame_keeps_every_placed_frame_at_its_own_sample(
    rest: list[int],
) -> None:
    """A frame is placed at its number's sample or not at all; one never placed was declared
    lost before it came, and is counted once as lost and once as a (late) duplicate."""
    timeline, told = feed([1, *rest])
    timeline.release(1.0, told)
    numbers = [n for n, _, _ in told.placements]
    assert len(numbers) == len(set(numbers))  # nothing placed twice
    for number, start, tag in told.placements:
        assert number == tag and start == (number - 1) * FRAME
    assert len(numbers) + timeline.stats.duplicates == 13
    assert timeline.stats.lost_frames == timeline.stats.duplicates
    assert timeline.position == 13 * FRAME
