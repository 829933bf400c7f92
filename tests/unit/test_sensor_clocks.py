"""Late motion judged by when it happened: sensor clock offsets learnt from live messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.model import MotionEvent
from hub.sessions.sensor_clocks import MAX_LATE, MIN_SAMPLES, SPACED, SensorClocks

T0 = 1_800_000_000.0
OFFSET = -3_600.0  # hub minus sensor: the hub's clock is an hour behind


def sent(at: float, *, arrives: float | None = None, late: bool = False) -> MotionEvent:
    """Motion the sensor stamped at `at` (its clock), received at `arrives` (hub clock)."""
    received = at + OFFSET + 0.2 if arrives is None else arrives
    return MotionEvent(
        sensor_id="bath",
        occurred_at=received,
        received_at=received,
        sensor_timestamp=at,
        late=late,
    )


def learnt(clocks: SensorClocks, count: int = MIN_SAMPLES, start: float = T0) -> float:
    """`count` live messages a minute apart; the time of the last one (sensor clock)."""
    for index in range(count):
        at = start + 60 * index
        assert clocks.judge(sent(at)).occurred_at == at + OFFSET + 0.2
    return start + 60 * (count - 1)


def test_live_motion_is_judged_by_its_receive_time() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    assert clocks.offset("bath", last) is not None
    live = sent(last + 60)
    assert clocks.judge(live) == live


def test_motion_that_sat_in_the_broker_is_dated_when_it_happened() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    happened = last + 60
    queued = sent(happened, arrives=happened + OFFSET + 20)  # the hub was stopped 20 s
    judged = clocks.judge(queued)
    assert abs(judged.occurred_at - (happened + OFFSET)) <= 1
    assert judged.late
    assert judged.received_at == queued.received_at


def test_without_a_stable_offset_motion_is_judged_as_decoded() -> None:
    clocks = SensorClocks()
    clocks.judge(sent(T0))
    queued = sent(T0 + 60, arrives=T0 + 60 + OFFSET + 20)
    assert clocks.judge(queued) == queued  # one sample is not an offset: receive time
    no_stamp = MotionEvent("bath", occurred_at=T0, received_at=T0)
    assert clocks.judge(no_stamp) == no_stamp


def test_a_backlog_does_not_teach_the_offset() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    arrives = last + OFFSET + 300
    backlog = [sent(last + 10 * i, arrives=arrives + 0.001 * i) for i in range(1, 25)]
    for event in backlog:
        assert clocks.judge(event).late
    after = sent(last + 400)
    assert clocks.judge(after) == after  # the offset is the live one still


def test_a_sensor_clock_that_moved_back_is_learnt_again() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    moved = 600.0  # the sensor's clock now reads 10 minutes behind
    judged = [
        clocks.judge(sent(last + 60 * i - moved, arrives=last + 60 * i + OFFSET + 0.2))
        for i in range(1, 6)
    ]
    assert [event.late for event in judged] == [True] * (MIN_SAMPLES - 1) + [False] * (
        6 - MIN_SAMPLES
    )
    assert SPACED < 60


def test_a_sensor_clock_that_moved_forward_falls_back_to_receive_time() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    ahead = sent(last + 60 + 600, arrives=last + 60 + OFFSET)
    assert clocks.judge(ahead) == ahead
    assert clocks.offset("bath", last + 60) is None  # samples disagree now


def test_a_hub_clock_step_moves_what_was_learnt() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    before = clocks.offset("bath", last)
    assert before is not None
    clocks.shift(30 * 86_400)
    assert clocks.offset("bath", last) == before + 30 * 86_400


def test_an_offset_learnt_before_a_long_outage_still_dates_its_backlog() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    happened = last + 60
    queued = sent(happened, arrives=happened + OFFSET + 2 * 86_400)  # the hub was down 2 days
    judged = clocks.judge(queued)
    assert abs(judged.occurred_at - (happened + OFFSET)) <= 1


def test_firmware_buffered_motion_is_dated_by_the_learnt_offset() -> None:
    clocks = SensorClocks()
    last = learnt(clocks)
    buffered = sent(last + 60, arrives=last + 60 + OFFSET + 120, late=True)
    judged = clocks.judge(buffered)
    assert abs(judged.occurred_at - (last + 60 + OFFSET)) <= 1
    assert clocks.judge(sent(last + 300)).occurred_at == last + 300 + OFFSET + 0.2


@given(
    lags=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=30),
    stamps=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=30),
    late=st.booleans(),
)
def test_motion_is_never_dated_after_it_arrived_nor_more_than_a_day_before(
    lags: list[float], stamps: list[float], late: bool
) -> None:
    clocks = SensorClocks()
    for index, (lag, stamp) in enumerate(zip(lags, stamps, strict=False)):
        received = T0 + index * 30
        event = MotionEvent(
            "bath",
            occurred_at=received,
            received_at=received,
            sensor_timestamp=stamp + lag,
            late=late and index % 2 == 0,
        )
        judged = clocks.judge(event)
        assert received - MAX_LATE <= judged.occurred_at <= received


def test_offsets_kept_across_a_restart_date_the_backlog_it_finds() -> None:
    before = SensorClocks()
    last = learnt(before)
    kept = before.offsets()
    assert set(kept) == {"bath"}
    after = SensorClocks()  # the hub restarted; the broker kept motion for it
    after.remember(kept)
    happened = last + 60
    judged = after.judge(sent(happened, arrives=happened + OFFSET + 30))
    assert judged.late
    assert abs(judged.occurred_at - (happened + OFFSET)) <= 1
    assert SensorClocks().offsets() == {}
