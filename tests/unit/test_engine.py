"""The session engine, rule by rule, with a fixed config and explicit `now` values.

Expectations are whole command lists holding whole Session values: the dataclasses
compare by value, so a wrong field anywhere fails the test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from hub.config import HubConfig, HubSection, Moment, QuietHours, SensorConfig, SessionsSection
from hub.errors import HubError
from hub.model import EndReason, MotionEvent, Session, SessionStatus, open_session
from hub.sessions.engine import (
    DropEvent,
    EngineError,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
)

LONDON = ZoneInfo("Europe/London")
NIGHT = QuietHours(start=dt.time(22, 0), end=dt.time(7, 0))

BATHROOM = SensorConfig(
    id="bathroom",
    user_id="user-1",
    context_uri="spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
    quiet_hours=NIGHT,
)
KITCHEN = SensorConfig(id="kitchen", user_id="user-2", timeout_minutes=2)
GARAGE = SensorConfig(id="garage", user_id="user-3", enabled=False)

CONFIG = HubConfig(
    hub=HubSection(timezone="Europe/London"),
    sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10, ttl_days=30),
    sensors=(BATHROOM, KITCHEN, GARAGE),
)
TIMEOUT = 300.0  # bathroom, from [sessions]
KITCHEN_TIMEOUT = 120.0

# Midday in London: outside the bathroom's quiet hours.
T = dt.datetime(2024, 6, 12, 12, 0, tzinfo=LONDON).timestamp()
LATE_EVENING = dt.datetime(2024, 6, 12, 23, 30, tzinfo=LONDON).timestamp()


def ids(sensor_id: str, start: float) -> str:
    return f"session-{sensor_id}-{start:.3f}"


def make_engine() -> SessionEngine:
    return SessionEngine(CONFIG, new_id=ids)


def motion(sensor_id: str, at: float) -> MotionEvent:
    return MotionEvent(sensor_id=sensor_id, occurred_at=at, received_at=at)


def opened(sensor: SensorConfig, start: float, now: float, note: str | None = None) -> Session:
    """The session the engine must create, built from the model's own constructor."""
    return open_session(
        session_id=ids(sensor.id, start),
        sensor_id=sensor.id,
        user_id=sensor.user_id,
        start=start,
        now=now,
        ttl_days=30,
        spotify_context_uri=sensor.context_uri or None,
        playback_note=note,
    )


def ended(
    session: Session, now: float, timeout: float = TIMEOUT, reason: EndReason = EndReason.TIMEOUT
) -> Session:
    return session.with_changes(
        status=SessionStatus.COMPLETED,
        end=session.last_motion + timeout,
        updated_at=now,
        end_reason=reason,
    )


# --- rule 3: creating a session --------------------------------------------------------


def test_a_session_plays_the_moment_of_its_start() -> None:
    news = "spotify:show:2mTUnDkuKUkhiueKcVWoP0"
    morning = Moment(dt.time(6, 30), dt.time(9, 0), context_uri=news, volume=35)
    evening = Moment(dt.time(18, 0), dt.time(22, 0), volume=25, shuffle=True)
    bathroom = dataclasses.replace(BATHROOM, volume=60, moments=(morning, evening))
    engine = SessionEngine(dataclasses.replace(CONFIG, sensors=(bathroom,)), new_id=ids)
    breakfast = dt.datetime(2024, 6, 12, 7, 15, tzinfo=LONDON).timestamp()

    commands = engine.on_motion(motion("bathroom", breakfast), now=breakfast)

    start = commands[-1]
    assert isinstance(start, StartPlayback)
    assert (start.sensor.context_uri, start.sensor.volume, start.sensor.shuffle) == (news, 35, None)
    assert start.session.spotify_context_uri == news  # the record says what this visit played


def test_first_motion_creates_a_session_and_starts_playback() -> None:
    engine = make_engine()
    event = motion("bathroom", T)
    session = opened(BATHROOM, T, now=T + 0.2)

    assert engine.on_motion(event, now=T + 0.2) == [
        PersistSession(session, event=event, created=True),
        StartPlayback(session, BATHROOM),
    ]
    assert engine.active == {"bathroom": session}
    assert session.ttl == int(T + 30 * 86_400)
    assert session.spotify_device_id is None


def test_a_sensor_without_context_uri_gets_none() -> None:
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("kitchen", T), now=T)
    assert isinstance(persist, PersistSession)
    assert persist.session.spotify_context_uri is None


def test_new_id_gets_the_sensor_and_the_start() -> None:
    calls: list[tuple[str, float]] = []

    def record(sensor_id: str, start: float) -> str:
        calls.append((sensor_id, start))
        return "session-x"

    SessionEngine(CONFIG, new_id=record).on_motion(motion("bathroom", T - 2), now=T)
    assert calls == [("bathroom", T - 2)]


def test_default_session_ids_follow_the_seed() -> None:
    [persist, _] = SessionEngine(CONFIG).on_motion(motion("bathroom", T), now=T)
    assert isinstance(persist, PersistSession)
    assert re.fullmatch(rf"session-bathroom-{int(T)}-[0-9a-f]{{8}}", persist.session.session_id)


def test_quiet_hours_record_the_session_without_playback() -> None:
    engine = make_engine()
    event = motion("bathroom", LATE_EVENING)
    session = opened(BATHROOM, LATE_EVENING, now=LATE_EVENING, note="quiet_hours")

    assert engine.on_motion(event, now=LATE_EVENING) == [
        PersistSession(session, event=event, created=True)
    ]
    # Nothing was started, so nothing is stopped at the end.
    assert engine.on_tick(LATE_EVENING + TIMEOUT) == [
        PersistSession(ended(session, LATE_EVENING + TIMEOUT), event=None, created=False)
    ]


def test_quiet_hours_are_judged_at_the_motion_not_at_processing() -> None:
    # Motion at 21:59:50 processed at 22:00:05 (not stale) still plays.
    occurred = dt.datetime(2024, 6, 12, 21, 59, 50, tzinfo=LONDON).timestamp()
    commands = make_engine().on_motion(motion("bathroom", occurred), now=occurred + 15)
    assert [type(c) for c in commands] == [PersistSession, StartPlayback]


def test_stale_motion_is_recorded_without_playback() -> None:
    engine = make_engine()
    event = motion("bathroom", T)
    now = T + TIMEOUT  # exactly one timeout late: stale
    session = opened(BATHROOM, T, now=now, note="stale")

    assert engine.on_motion(event, now=now) == [PersistSession(session, event=event, created=True)]
    # Its deadline has passed already: the next tick ends it at that deadline.
    assert engine.next_deadline() == T + TIMEOUT
    assert engine.on_tick(now) == [PersistSession(ended(session, now), event=None, created=False)]


def test_late_but_not_stale_motion_still_plays() -> None:
    commands = make_engine().on_motion(motion("bathroom", T), now=T + TIMEOUT - 0.5)
    assert [type(c) for c in commands] == [PersistSession, StartPlayback]


# --- rule 2: unknown and disabled sensors ------------------------------------------------


@pytest.mark.parametrize(
    ("sensor_id", "reason"), [("attic", "unknown_sensor"), ("garage", "disabled_sensor")]
)
def test_unknown_and_disabled_sensors_are_dropped(sensor_id: str, reason: str) -> None:
    engine = make_engine()
    event = motion(sensor_id, T)
    assert engine.on_motion(event, now=T) == [DropEvent(event, reason)]
    assert engine.active == {}
    assert engine.next_deadline() is None


# --- rule 4: extending, debounce ---------------------------------------------------------


def test_coalesced_and_counted_motion_then_the_session_ends_at_its_deadline() -> None:
    engine = make_engine()
    first = motion("bathroom", T)
    created = opened(BATHROOM, T, now=T)
    assert engine.on_motion(first, now=T) == [
        PersistSession(created, event=first, created=True),
        StartPlayback(created, BATHROOM),
    ]

    # t+3: inside the debounce window; not counted, but it still extends the session.
    coalesced = created.with_changes(last_motion=T + 3, updated_at=T + 3)
    assert engine.on_motion(motion("bathroom", T + 3), now=T + 3) == [
        PersistSession(coalesced, event=None, created=False)
    ]

    # t+12: 12 s after the last counted motion (t): counted.
    second = motion("bathroom", T + 12)
    counted = coalesced.with_changes(last_motion=T + 12, motion_events_count=2, updated_at=T + 12)
    assert engine.on_motion(second, now=T + 12) == [
        PersistSession(counted, event=second, created=False)
    ]

    assert engine.next_deadline() == T + 312
    assert engine.on_tick(T + 311.999) == []
    final = ended(counted, now=T + 312)
    assert engine.on_tick(T + 312) == [
        PersistSession(final, event=None, created=False),
        StopPlayback(final, BATHROOM),  # StartPlayback was emitted and never refused
    ]
    assert final.end == T + 312
    assert final.motion_events_count == 2
    assert final.duration_minutes == 5.2
    assert engine.active == {}
    assert engine.next_deadline() is None


def test_debounce_counts_from_the_last_counted_motion() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    engine.on_motion(motion("bathroom", T + 6), now=T + 6)  # coalesced
    # 9.9 s after the last counted motion, 3.9 s after the last one: still coalesced.
    [persist] = engine.on_motion(motion("bathroom", T + 9.9), now=T + 9.9)
    assert isinstance(persist, PersistSession)
    assert (persist.event, persist.session.motion_events_count) == (None, 1)
    # Exactly the debounce after the last counted motion: counted.
    event = motion("bathroom", T + 10)
    [persist] = engine.on_motion(event, now=T + 10)
    assert isinstance(persist, PersistSession)
    assert (persist.event, persist.session.motion_events_count) == (event, 2)


def test_a_person_still_in_the_room_keeps_the_music() -> None:
    """The seed dropped coalesced motion: music stopped with someone still there."""
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    for step in range(1, 200):  # motion every 5 s for ~16 minutes
        engine.on_motion(motion("bathroom", T + 5 * step), now=T + 5 * step)
        assert "bathroom" in engine.active
    assert engine.next_deadline() == T + 5 * 199 + TIMEOUT


def test_older_motion_inside_the_session_never_moves_it_backwards() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    engine.on_motion(motion("bathroom", T + 5), now=T + 5)
    # Coalesced and older than the last motion: nothing changes, nothing is written.
    assert engine.on_motion(motion("bathroom", T + 2), now=T + 6) == []
    assert engine.active["bathroom"].last_motion == T + 5


def test_motion_older_than_the_last_counted_one_is_coalesced() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    engine.on_motion(motion("bathroom", T + 30), now=T + 30)  # counted: the burst opens at t+30
    # Arrives late: 15 s after the first motion but before the burst, so not counted twice.
    assert engine.on_motion(motion("bathroom", T + 15), now=T + 31) == []
    assert engine.active["bathroom"].motion_events_count == 2


def test_motion_before_the_active_session_started_is_out_of_order() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    event = motion("bathroom", T - 1)
    assert engine.on_motion(event, now=T + 2) == [DropEvent(event, "out_of_order")]


def test_motion_first_ends_expired_sessions() -> None:
    engine = make_engine()
    [persisted, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(persisted, PersistSession)
    event = motion("bathroom", T + 400)
    final = ended(persisted.session, now=T + 400)
    fresh = opened(BATHROOM, T + 400, now=T + 400)
    assert engine.on_motion(event, now=T + 400) == [
        PersistSession(final, event=None, created=False),
        StopPlayback(final, BATHROOM),
        PersistSession(fresh, event=event, created=True),
        StartPlayback(fresh, BATHROOM),
    ]


def test_each_sensor_has_its_own_session_and_timeout() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    engine.on_motion(motion("kitchen", T + 1), now=T + 1)
    assert set(engine.active) == {"bathroom", "kitchen"}
    assert engine.deadline(engine.active["kitchen"]) == T + 1 + KITCHEN_TIMEOUT
    assert engine.next_deadline() == T + 1 + KITCHEN_TIMEOUT
    [persist, stop] = engine.on_tick(T + 1 + KITCHEN_TIMEOUT)
    assert isinstance(persist, PersistSession)
    assert isinstance(stop, StopPlayback)
    assert persist.session.end == T + 1 + KITCHEN_TIMEOUT
    assert set(engine.active) == {"bathroom"}
    assert engine.next_deadline() == T + TIMEOUT


def test_active_is_a_read_only_view() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    view = engine.active
    with pytest.raises(TypeError):
        view["kitchen"] = view["bathroom"]  # type: ignore[index]


# --- rule 1: ending ----------------------------------------------------------------------


def test_a_late_tick_still_ends_the_session_at_its_deadline() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    [persist, _] = engine.on_tick(T + 10_000)
    assert isinstance(persist, PersistSession)
    assert persist.session.end == T + TIMEOUT
    assert persist.session.updated_at == T + 10_000
    assert persist.session.duration_minutes == 5.0


def test_a_refused_playback_is_not_stopped() -> None:
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(persist, PersistSession)
    sid = persist.session.session_id
    refused = persist.session.with_changes(playback_note="already_playing", updated_at=T + 1)
    assert engine.on_playback_started(
        sid, started=False, device_id=None, note="already_playing", now=T + 1
    ) == [PersistSession(refused, event=None, created=False)]
    assert engine.on_tick(T + TIMEOUT) == [
        PersistSession(ended(refused, T + TIMEOUT), event=None, created=False)
    ]


# --- rule 5: replayed (buffered) motion ----------------------------------------------------


def test_a_replayed_burst_becomes_one_session() -> None:
    engine = make_engine()
    now = T + 1000  # everything arrives after an outage, long after it happened
    first = motion("bathroom", T)
    second = motion("bathroom", T + 5)
    third = motion("bathroom", T + 100)

    created = opened(BATHROOM, T, now=now, note="stale")
    assert engine.on_motion(first, now=now) == [PersistSession(created, first, created=True)]

    # It happened inside the session: coalesced into it, which then ends at once (stale).
    extended = created.with_changes(last_motion=T + 5)
    amended = ended(extended, now)
    assert engine.on_motion(second, now=now) == [
        PersistSession(extended, event=None, created=False),
        PersistSession(amended, event=None, created=False),
    ]

    counted = amended.with_changes(last_motion=T + 100, end=T + 400, motion_events_count=2)
    assert engine.on_motion(third, now=now) == [PersistSession(counted, third, created=False)]
    assert engine.active == {}
    assert counted.status is SessionStatus.COMPLETED
    assert counted.end is not None
    assert counted.end <= now


def test_stale_motion_after_the_last_session_starts_a_new_one() -> None:
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    engine.on_tick(T + TIMEOUT)
    # Stale, and after the ended session's end (t+300): a new, silent session.
    event = motion("bathroom", T + 301)
    fresh = opened(BATHROOM, T + 301, now=T + 1000, note="stale")
    assert engine.on_motion(event, now=T + 1000) == [PersistSession(fresh, event, created=True)]


def test_fresh_motion_inside_the_last_session_plays_again() -> None:
    """Only stale motion amends; motion a person may still be making starts over."""
    engine = make_engine()
    engine.on_motion(motion("bathroom", T), now=T)
    engine.on_tick(T + TIMEOUT)
    commands = engine.on_motion(motion("bathroom", T + 250), now=T + 301)
    assert [type(c) for c in commands] == [PersistSession, StartPlayback]


# --- crash recovery -------------------------------------------------------------------------


def restored(sensor: SensorConfig, start: float, last_motion: float, **changes: object) -> Session:
    return opened(sensor, start, now=start).with_changes(
        last_motion=last_motion, motion_events_count=4, **changes
    )


def test_restore_then_tick_after_a_long_downtime_ends_at_the_old_deadline() -> None:
    engine = make_engine()
    session = restored(BATHROOM, T, T + 60, playback_started=True, spotify_device_id="dev")
    engine.restore([session])
    assert engine.active == {"bathroom": session}
    assert engine.next_deadline() == T + 60 + TIMEOUT

    now = T + 86_400  # the hub was down for a day
    final = ended(session, now, reason=EndReason.RECOVERED)  # nothing happened since
    assert engine.on_tick(now) == [
        PersistSession(final, event=None, created=False),
        StopPlayback(final, BATHROOM),  # it was playing: pause what the hub started
    ]
    assert final.end == T + 60 + TIMEOUT


def test_restored_session_without_playback_is_not_stopped() -> None:
    engine = make_engine()
    session = restored(BATHROOM, T, T + 60)
    engine.restore([session])
    assert engine.on_tick(T + 1000) == [
        PersistSession(
            ended(session, T + 1000, reason=EndReason.RECOVERED), event=None, created=False
        )
    ]


def test_restored_session_debounces_from_its_last_motion() -> None:
    engine = make_engine()
    engine.restore([restored(BATHROOM, T, T + 60)])
    [persist] = engine.on_motion(motion("bathroom", T + 65), now=T + 65)
    assert isinstance(persist, PersistSession)
    assert (persist.event, persist.session.motion_events_count) == (None, 4)
    assert persist.session.last_motion == T + 65


def test_restored_session_of_a_removed_sensor_still_ends() -> None:
    engine = make_engine()
    ghost = SensorConfig(id="attic", user_id="user-9")
    session = restored(ghost, T, T, playback_started=True)
    engine.restore([session])
    event = motion("attic", T + 1)
    assert engine.on_motion(event, now=T + 1) == [DropEvent(event, "unknown_sensor")]
    final = ended(session, T + TIMEOUT, reason=EndReason.RECOVERED)  # [sessions].timeout_minutes
    assert engine.on_tick(T + TIMEOUT) == [
        PersistSession(final, event=None, created=False),
        StopPlayback(final, sensor=None),
    ]


def test_restore_misuse_is_our_bug() -> None:
    session = restored(BATHROOM, T, T)
    with pytest.raises(EngineError):
        make_engine().restore([session, session.with_changes(session_id="other")])
    with pytest.raises(EngineError):
        make_engine().restore([ended(session, T + TIMEOUT)])
    engine = make_engine()
    engine.on_tick(T)
    with pytest.raises(EngineError):
        engine.restore([session])
    assert issubclass(EngineError, HubError)


def test_a_duplicate_session_id_is_our_bug() -> None:
    engine = SessionEngine(CONFIG, new_id=lambda _sensor, _start: "same")
    engine.on_motion(motion("bathroom", T), now=T)
    with pytest.raises(EngineError):
        engine.on_motion(motion("kitchen", T), now=T)


# --- rules 6 and 7: playback results --------------------------------------------------------


def test_playback_started_is_recorded() -> None:
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(persist, PersistSession)
    playing = persist.session.with_changes(
        playback_started=True, spotify_device_id="dev-1", updated_at=T + 1
    )
    assert engine.on_playback_started(
        playing.session_id, started=True, device_id="dev-1", note=None, now=T + 1
    ) == [PersistSession(playing, event=None, created=False)]
    assert engine.active == {"bathroom": playing}

    final = ended(playing, T + TIMEOUT)
    assert engine.on_tick(T + TIMEOUT) == [
        PersistSession(final, event=None, created=False),
        StopPlayback(final, BATHROOM),
    ]
    stopped = final.with_changes(playback_stopped=True, updated_at=T + TIMEOUT + 1)
    assert engine.on_playback_stopped(final.session_id, stopped=True, now=T + TIMEOUT + 1) == [
        PersistSession(stopped, event=None, created=False)
    ]


def test_a_late_playback_start_after_the_end_is_stopped() -> None:
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(persist, PersistSession)
    # The deadline passes while Spotify is still answering.
    [closing, first_stop] = engine.on_tick(T + TIMEOUT)
    assert isinstance(closing, PersistSession)
    assert first_stop == StopPlayback(closing.session, BATHROOM)

    late = closing.session.with_changes(
        playback_started=True, spotify_device_id="dev-1", updated_at=T + TIMEOUT + 2
    )
    assert engine.on_playback_started(
        late.session_id, started=True, device_id="dev-1", note=None, now=T + TIMEOUT + 2
    ) == [PersistSession(late, event=None, created=False), StopPlayback(late, BATHROOM)]
    assert late.status is SessionStatus.COMPLETED
    assert engine.active == {}


def test_a_stop_answered_before_a_late_start_is_stopped_again() -> None:
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(persist, PersistSession)
    sid = persist.session.session_id
    engine.on_tick(T + TIMEOUT)
    [stopped] = engine.on_playback_stopped(sid, stopped=False, now=T + TIMEOUT + 1)
    assert isinstance(stopped, PersistSession)
    assert stopped.session.playback_stopped is False
    commands = engine.on_playback_started(
        sid, started=True, device_id="dev-1", note=None, now=T + TIMEOUT + 2
    )
    assert [type(c) for c in commands] == [PersistSession, StopPlayback]
    [again] = engine.on_playback_stopped(sid, stopped=True, now=T + TIMEOUT + 3)
    assert isinstance(again, PersistSession)
    assert again.session.playback_stopped is True
    assert again.session.playback_started is True


def test_a_late_start_is_stopped_even_after_the_sensor_moved_on() -> None:
    """Stop answered first, then a newer session ended; the late start is still stopped."""
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("kitchen", T), now=T)
    assert isinstance(persist, PersistSession)
    sid = persist.session.session_id
    engine.on_tick(T + KITCHEN_TIMEOUT)
    engine.on_playback_stopped(sid, stopped=False, now=T + 121)
    engine.on_motion(motion("kitchen", T + 200), now=T + 200)
    engine.on_tick(T + 200 + KITCHEN_TIMEOUT)  # a newer session is now the last ended
    commands = engine.on_playback_started(sid, started=True, device_id="d", note=None, now=T + 400)
    assert [type(c) for c in commands] == [PersistSession, StopPlayback]


def test_duplicate_answers_are_ignored() -> None:
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("kitchen", T), now=T)
    assert isinstance(persist, PersistSession)
    sid = persist.session.session_id
    assert engine.on_playback_started(sid, started=True, device_id="d", note=None, now=T + 1)
    assert engine.on_playback_started(sid, started=False, device_id=None, note="x", now=T + 2) == []
    assert engine.active["kitchen"].playback_started is True
    engine.on_tick(T + KITCHEN_TIMEOUT)
    assert engine.on_playback_stopped(sid, stopped=True, now=T + 121)
    assert engine.on_playback_stopped(sid, stopped=False, now=T + 122) == []


def test_results_for_unknown_or_unasked_sessions_are_ignored() -> None:
    engine = make_engine()
    assert engine.on_playback_started("nope", started=True, device_id=None, note=None, now=T) == []
    assert engine.on_playback_stopped("nope", stopped=True, now=T) == []
    [persist] = engine.on_motion(motion("bathroom", LATE_EVENING), now=LATE_EVENING)
    assert isinstance(persist, PersistSession)
    sid = persist.session.session_id  # quiet hours: no playback was asked for
    assert engine.on_playback_started(sid, started=True, device_id=None, note=None, now=T) == []
    assert engine.on_playback_stopped(sid, stopped=True, now=T) == []


def test_ended_sessions_are_forgotten_once_settled() -> None:
    engine = make_engine()
    start = T
    for _ in range(50):  # the kitchen has no quiet hours: every session plays
        [persist, _] = engine.on_motion(motion("kitchen", start), now=start)
        assert isinstance(persist, PersistSession)
        sid = persist.session.session_id
        engine.on_tick(start + KITCHEN_TIMEOUT)
        # A late start after the end: it is stopped a second time.
        engine.on_playback_started(sid, started=True, device_id=None, note=None, now=start + 200)
        engine.on_playback_stopped(sid, stopped=False, now=start + 201)
        assert sid in engine._tracked  # kept while the second stop is unanswered
        engine.on_playback_stopped(sid, stopped=True, now=start + 202)
        start += 1000
    # Only the last ended session stays, for replayed motion to amend.
    assert len(engine._tracked) == 1


def test_times_land_on_the_microsecond_grid_so_the_record_is_exact() -> None:
    # A raw receive time and a fractional timeout: the float sum alone would sometimes put
    # endTime one microsecond past lastMotionTime + timeout in the ISO record.
    config = HubConfig(
        sessions=SessionsSection(timeout_minutes=0.02, debounce_seconds=10),
        sensors=(SensorConfig(id="bath", user_id="u"),),
    )
    engine = SessionEngine(config, new_id=lambda sensor, _start: f"s-{sensor}")
    occurred = 1_711_835_398.2578125  # not on the microsecond grid
    engine.on_motion(MotionEvent("bath", occurred, occurred), occurred)
    (persist, *_) = engine.on_tick(occurred + 60)
    assert isinstance(persist, PersistSession)
    record = persist.session.to_record()
    assert persist.session.start == round(occurred, 6)
    end = dt.datetime.fromisoformat(record["endTime"])
    last = dt.datetime.fromisoformat(record["lastMotionTime"])
    assert end - last == dt.timedelta(seconds=1.2)


def test_a_second_stop_finding_nothing_does_not_unrecord_the_pause() -> None:
    # The session ends while its start is in flight (stop #1), the start then succeeds
    # (stop #2 is asked): #1 paused the music, #2 finds nothing to pause.
    engine = make_engine()
    [persist, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(persist, PersistSession)
    sid = persist.session.session_id
    engine.on_tick(T + TIMEOUT)
    engine.on_playback_started(sid, started=True, device_id="dev-1", note=None, now=T + 301)
    [first] = engine.on_playback_stopped(sid, stopped=True, now=T + 302)
    [second] = engine.on_playback_stopped(sid, stopped=False, now=T + 303)
    assert isinstance(first, PersistSession)
    assert isinstance(second, PersistSession)
    assert first.session.playback_stopped is True
    assert second.session.playback_stopped is True


def test_motion_seen_late_but_before_the_deadline_extends_the_session() -> None:
    # A backlog (slow disk, busy hub): motion at T+299 is handled at T+301, after the
    # deadline T+300. It happened in time, so the person was still there: one session.
    engine = make_engine()
    [created, _] = engine.on_motion(motion("bathroom", T), now=T)
    assert isinstance(created, PersistSession)
    late = motion("bathroom", T + 299)
    commands = engine.on_motion(late, now=T + 301)
    assert [type(c) for c in commands] == [PersistSession]
    assert isinstance(commands[0], PersistSession)
    extended = commands[0].session
    assert extended.session_id == created.session.session_id
    assert extended.is_active
    assert engine.deadline(extended) == T + 299 + TIMEOUT
