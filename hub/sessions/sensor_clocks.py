"""Late motion judged by when it happened: each sensor's clock offset, learned from its
live messages. Pure: no clock, no I/O.

Motion that sat in the broker (the hub stopped or restarting, its socket paused) arrives
with the hub's receive time long after it happened; judged by that time, a motion sent
just before a session's deadline opens a new session — music for someone who left. Our
firmware stamps motion with its NTP-set clock (whole seconds), so:

- A message's *lag* is `received_at - sensor_timestamp`: the clocks' offset plus the time
  it took to arrive. The sensor's offset is the lowest lag of its recent live messages —
  *known and stable* once `MIN_SAMPLES` of them agree within `AGREE` seconds.
- With a stable offset, a message whose lag is more than `LATE_AFTER` above it sat
  somewhere: it happened at `sensor_timestamp + offset` (at most `MAX_LATE` before it was
  received), so it extends the session it belongs to or, older than the timeout, starts a
  session without music. Any other message is live: it happened when it was received.
- Without one (a new sensor, no timestamps, samples that disagree) the message is judged
  as decoded: by its receive time, or a firmware-buffered (`late`) one by its own stamp.

A sensor whose clock moves (re-synchronised, rebooted) is re-learnt: lags that drop are
live at once (they count as samples; the offset is unstable until they agree), and lags
that rise are taken as the new offset once `MIN_SAMPLES` in a row agree with each other
while arriving at least `SPACED` seconds apart — a backlog arrives in one burst, with lags
as far apart as the motion was. Until then (at most two messages) such motion is judged
by the old offset, as sat in the broker.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from hub.model import MotionEvent

MIN_SAMPLES: Final = 3
WINDOW: Final = 8  # live samples kept per sensor
AGREE: Final = 2.0  # seconds: whole-second stamps and a LAN's latency
LATE_AFTER: Final = 2.0  # seconds of lag above the offset before a message counts as late
SPACED: Final = 2.0  # seconds between the arrivals of a moved clock's messages, at least
MAX_AGE: Final = 24 * 60 * 60  # seconds (sensor clock) a sample is trusted: clocks drift
MAX_LATE: Final = 7 * 24 * 60 * 60  # a late message is dated at most this long before arrival


class _Sample(NamedTuple):
    stamp: float  # the sensor's timestamp: a sample's age is told on the sensor's clock,
    received: float  # so a hub that was down for hours still knows its sensors' offsets
    lag: float  # received - stamp


@dataclass(slots=True)
class _Sensor:
    live: deque[_Sample] = field(default_factory=lambda: deque(maxlen=WINDOW))
    # Consecutive messages well above the offset: a backlog, or a clock that moved.
    high: deque[_Sample] = field(default_factory=lambda: deque(maxlen=MIN_SAMPLES))


class SensorClocks:
    """`judge(event)` dates one motion event, learning its sensor's clock as it goes."""

    __slots__ = ("_sensors",)

    def __init__(self) -> None:
        self._sensors: dict[str, _Sensor] = {}

    def offset(self, sensor_id: str, at: float) -> float | None:
        """The sensor's clock offset (hub minus sensor, seconds) if known and stable at
        `at` (the sensor's clock)."""
        sensor = self._sensors.get(sensor_id)
        return None if sensor is None else _stable_offset(sensor, at)

    def judge(self, event: MotionEvent) -> MotionEvent:
        """`event`, with `occurred_at` when it happened (see the module docstring)."""
        if event.sensor_timestamp is None:
            return event
        stamp, received = event.sensor_timestamp, event.received_at
        sample = _Sample(stamp, received, received - stamp)
        sensor = self._sensor(event.sensor_id)
        offset = _stable_offset(sensor, stamp)
        if offset is None:
            if not event.late:  # buffered by the firmware: never a sample of a live lag
                sensor.live.append(sample)
            return event
        waited = sample.lag - offset
        if waited <= LATE_AFTER:
            if not event.late:
                sensor.live.append(sample)
                sensor.high.clear()
        elif not event.late:
            sensor.high.append(sample)
            if _moved(sensor.high):  # the sensor's clock moved: its new offset
                sensor.live = deque(sensor.high, maxlen=WINDOW)
                sensor.high.clear()
                return event
        return _dated(event, waited)

    def offsets(self) -> dict[str, tuple[float, float]]:
        """sensor id -> (offset, the sensor's time of its newest sample) for each sensor
        whose offset is known and stable: what a restart keeps, so the backlog it finds in
        the broker is dated too (`remember`)."""
        kept: dict[str, tuple[float, float]] = {}
        for sensor_id, sensor in self._sensors.items():
            if not sensor.live:
                continue
            newest = max(sample.stamp for sample in sensor.live)
            offset = _stable_offset(sensor, newest)
            if offset is not None:
                kept[sensor_id] = (offset, newest)
        return kept

    def remember(self, kept: Mapping[str, tuple[float, float]]) -> None:
        """Take back what `offsets()` gave before a restart, for sensors not heard from
        since; their own messages replace it as they come."""
        for sensor_id, (offset, stamp) in kept.items():
            sensor = self._sensor(sensor_id)
            if not sensor.live:
                sensor.live.extend(
                    _Sample(stamp, stamp + offset, offset) for _ in range(MIN_SAMPLES)
                )

    def shift(self, delta: float) -> None:
        """The hub's clock stepped by `delta`: every receive time and lag moves with it."""
        for sensor in self._sensors.values():
            for samples in (sensor.live, sensor.high):
                moved = [
                    _Sample(sample.stamp, sample.received + delta, sample.lag + delta)
                    for sample in samples
                ]
                samples.clear()
                samples.extend(moved)

    def _sensor(self, sensor_id: str) -> _Sensor:
        # One per configured sensor: the engine judges no other sensor's motion.
        sensor = self._sensors.get(sensor_id)
        if sensor is None:
            sensor = self._sensors[sensor_id] = _Sensor()
        return sensor


def _stable_offset(sensor: _Sensor, at: float) -> float | None:
    lags = [sample.lag for sample in sensor.live if at - sample.stamp <= MAX_AGE]
    if len(lags) < MIN_SAMPLES:
        return None
    lowest = min(lags)
    agreeing = sum(1 for lag in lags if lag - lowest <= AGREE)
    return lowest if agreeing >= MIN_SAMPLES else None


def _moved(high: deque[_Sample]) -> bool:
    """MIN_SAMPLES messages in a row, each as late as the others, arriving spaced out."""
    if len(high) < MIN_SAMPLES:
        return False
    lags = [sample.lag for sample in high]
    arrivals = [sample.received for sample in high]
    spaced = all(b - a >= SPACED for a, b in itertools.pairwise(arrivals))
    return spaced and max(lags) - min(lags) <= AGREE


def _dated(event: MotionEvent, waited: float) -> MotionEvent:
    """The event dated `waited` seconds before its arrival when it is late, else at it."""
    received = event.received_at
    if waited > LATE_AFTER:
        return dataclasses.replace(event, occurred_at=received - min(waited, MAX_LATE), late=True)
    if event.occurred_at == received:
        return event
    return dataclasses.replace(event, occurred_at=received)
