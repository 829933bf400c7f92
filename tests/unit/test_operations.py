from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from hub.config import HubConfig, HubSection, SensorConfig, SessionsSection
from hub.playback.dry_run import DryRunPlayer
from hub.sessions.local import invoke_here
from hub.timeutil import parse_iso

# 2026-02-08 23:11:12 UTC, a Sunday; the hub lives in London (UTC+0 in February).
T0 = 1_770_592_272.0
CONFIG = HubConfig(
    hub=HubSection(timezone="Europe/London"),
    # Sessions here end by request; the hour keeps the active ones active while the test
    # moves the clock (the runner ends a session at its deadline, as the daemon does).
    sessions=SessionsSection(timeout_minutes=60),
    sensors=(
        SensorConfig(id="bathroom_main", user_id="user-123", context_uri="spotify:playlist:abc"),
    ),
)


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Hub:
    """The six operations as `spottypotty invoke` runs them with no daemon: the runner,
    engine and writer in this process, on a real SQLite file."""

    config: HubConfig
    clock: FakeClock
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def invoke(self, event: object) -> dict[str, Any]:
        def new_id(sensor: str, start: float) -> str:
            return f"session-{sensor}-{int(start)}-{next(self.ids):08x}"

        response = asyncio.run(
            invoke_here(self.config, event, player=DryRunPlayer(), clock=self.clock, new_id=new_id)
        )
        assert isinstance(response.pop("duration_ms"), float)
        stamp = response.pop("timestamp")
        assert abs(parse_iso(stamp) - time.time()) < 60  # the seed's: now, ISO-8601 UTC
        assert stamp.endswith("+00:00")
        return response


@pytest.fixture
def ctx(tmp_path: Path, clock: FakeClock) -> Hub:
    return Hub(replace(CONFIG, hub=replace(CONFIG.hub, database=tmp_path / "hub.db")), clock)


def run(ctx: Hub, **event: Any) -> dict[str, Any]:
    return ctx.invoke(event)


def test_create_session_answers_the_seed_record(ctx: Hub) -> None:
    response = run(
        ctx,
        action="create_session",
        sensorId="test-sensor-001",
        userId="test-user-001",
        spotifyDeviceId="test-device-001",
    )
    assert response == {
        "statusCode": 200,
        "action": "create_session",
        "session": {
            "sessionId": "session-test-sensor-001-1770592272-00000001",
            "sensorId": "test-sensor-001",
            "userId": "test-user-001",
            "status": "active",
            "startTime": 1770592272,
            "startTimeISO": "2026-02-08T23:11:12.000000+00:00",
            "lastMotionTime": "2026-02-08T23:11:12.000000+00:00",
            "motionEventsCount": 1,
            "playbackStarted": False,
            "spotifyDeviceId": "test-device-001",
            "createdAt": "2026-02-08T23:11:12.000000+00:00",
            "updatedAt": "2026-02-08T23:11:12.000000+00:00",
            "ttl": 1770592272 + 30 * 86400,
        },
    }


def test_create_takes_user_and_playlist_from_the_config(ctx: Hub) -> None:
    session = run(ctx, action="create_session", sensorId="bathroom_main")["session"]
    assert session["userId"] == "user-123"
    assert session["spotifyContextUri"] == "spotify:playlist:abc"


def test_second_create_is_a_conflict_naming_the_active_session(ctx: Hub) -> None:
    first = run(ctx, action="create_session", sensorId="bathroom_main")["session"]
    response = run(ctx, action="create_session", sensorId="bathroom_main")
    assert response["statusCode"] == 409
    assert response["error"] == "ConflictError"
    assert first["sessionId"] in response["message"]
    assert response["activeSessionId"] == first["sessionId"]
    listed = run(ctx, action="query_sessions", sensorId="bathroom_main")
    assert listed["count"] == 1


def test_update_then_end_computes_duration(ctx: Hub, clock: FakeClock) -> None:
    session_id = run(ctx, action="create_session", sensorId="bathroom_main")["session"]["sessionId"]
    clock.now = T0 + 60
    updated = run(
        ctx,
        action="update_session",
        sessionId=session_id,
        incrementMotionCount=True,
        playbackStarted=True,
    )["session"]
    assert updated["motionEventsCount"] == 2
    assert updated["playbackStarted"] is True
    assert updated["lastMotionTime"] == "2026-02-08T23:12:12.000000+00:00"
    clock.now = T0 + 150
    ended = run(ctx, action="end_session", sessionId=session_id, playbackStopped=True)["session"]
    assert ended["status"] == "completed"
    assert ended["durationMinutes"] == 2.5
    assert ended["endTime"] == "2026-02-08T23:13:42.000000+00:00"
    assert ended["playbackStopped"] is True
    again = run(ctx, action="end_session", sessionId=session_id)
    assert (again["statusCode"], again["error"]) == (409, "ConflictError")
    motion = run(ctx, action="update_session", sessionId=session_id, incrementMotionCount=True)
    assert motion["statusCode"] == 409


def test_get_active_session(ctx: Hub) -> None:
    missing = run(ctx, action="get_active_session", sensorId="bathroom_main")
    assert missing == {"statusCode": 200, "action": "get_active_session", "session": None}
    created = run(ctx, action="create_session", sensorId="bathroom_main")["session"]
    found = run(ctx, action="get_active_session", sensorId="bathroom_main")
    assert found == {"statusCode": 200, "action": "get_active_session", "session": created}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"action": "create_session"}, "sensorId"),
        ({"action": "create_session", "sensorId": "unknown-sensor"}, "userId"),
        ({"action": "create_session", "sensorId": 42, "userId": "u"}, "sensorId"),
        ({"action": "create_session", "sensorId": "a/b", "userId": "u"}, "sensorId"),
        ({"action": "create_session", "sensorId": "x", "userId": "u", "sensorID": "y"}, "sensorID"),
        (
            {"action": "update_session", "sessionId": "s", "playbackStarted": "yes"},
            "playbackStarted",
        ),
        ({"action": "query_sessions", "sensorId": "x", "limit": -1}, "limit"),
        ({"action": "query_sessions", "sensorId": "x", "limit": "10"}, "limit"),
        ({"action": "query_sessions", "sensorId": "x", "startDate": "31/01/2026"}, "startDate"),
        (
            {"action": "query_sessions", "startDate": "2026-02-02", "endDate": "2026-02-01"},
            "endDate",
        ),
        ({"action": "query_sessions", "status": "paused"}, "status"),
        ({"action": "query_sessions", "exclusiveStartKey": "abc"}, "exclusiveStartKey"),
        ({"action": "get_session_analytics", "endDate": "tomorrow"}, "endDate"),
        ({"action": "dance"}, "action"),
        ({}, "action"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(ctx: Hub, event: dict[str, Any], field: str) -> None:
    response = ctx.invoke(event)
    assert response["statusCode"] == 400
    assert response["error"] == "ValidationError"
    assert response["field"] == field
    assert isinstance(response["message"], str)


def test_a_non_object_event_is_a_400(ctx: Hub) -> None:
    assert ctx.invoke(["create_session"])["statusCode"] == 400
    assert ctx.invoke(None)["statusCode"] == 400


def test_unknown_session_is_a_404(ctx: Hub) -> None:
    response = run(ctx, action="update_session", sessionId="session-123", incrementMotionCount=True)
    assert (response["statusCode"], response["error"]) == (404, "ResourceNotFoundError")


def _history(ctx: Hub, clock: FakeClock, starts: list[float]) -> list[str]:
    ids = []
    for start in starts:
        clock.now = start
        session_id = run(ctx, action="create_session", sensorId="bathroom_main")["session"][
            "sessionId"
        ]
        clock.now = start + 120
        run(ctx, action="end_session", sessionId=session_id)
        ids.append(session_id)
    return ids


def test_a_date_only_end_date_covers_the_whole_local_day(ctx: Hub, clock: FakeClock) -> None:
    # London is UTC+1 in July: the local day 2026-07-01 is 2026-06-30T23:00Z..2026-07-01T23:00Z.
    day_start = 1_782_860_400.0  # 2026-07-01T00:00+01:00
    ids = _history(ctx, clock, [day_start - 1, day_start, day_start + 86_399, day_start + 86_400])
    response = run(
        ctx,
        action="query_sessions",
        sensorId="bathroom_main",
        startDate="2026-07-01",
        endDate="2026-07-01",
    )
    assert [s["sessionId"] for s in response["sessions"]] == [ids[2], ids[1]]
    assert response["hasMore"] is False
    assert "lastEvaluatedKey" not in response


def test_pagination_with_last_evaluated_key(ctx: Hub, clock: FakeClock) -> None:
    ids = _history(ctx, clock, [T0 + 1000 * i for i in range(5)])
    seen: list[str] = []
    event: dict[str, Any] = {"action": "query_sessions", "sensorId": "bathroom_main", "limit": 2}
    while True:
        response = run(ctx, **event)
        seen += [s["sessionId"] for s in response["sessions"]]
        if not response["hasMore"]:
            break
        event["exclusiveStartKey"] = response["lastEvaluatedKey"]
    assert seen == list(reversed(ids))


def test_huge_limits_are_capped(ctx: Hub, clock: FakeClock) -> None:
    _history(ctx, clock, [T0])
    response = run(ctx, action="query_sessions", sensorId="bathroom_main", limit=10**12)
    assert response["statusCode"] == 200
    assert response["count"] == 1


def test_analytics_over_a_small_history(ctx: Hub, clock: FakeClock) -> None:
    # Three completed 2-minute sessions at 23:11, 23:28 and 23:45 London time on
    # 2026-02-08, then an active one with music at 23:47; a kitchen one at 00:01 on the 9th.
    _history(ctx, clock, [T0, T0 + 1000, T0 + 2000])
    session_id = run(ctx, action="create_session", sensorId="bathroom_main")["session"]["sessionId"]
    run(ctx, action="update_session", sessionId=session_id, playbackStarted=True)
    clock.now = T0 + 3000  # within the bathroom session's hour: it stays active
    run(ctx, action="create_session", sensorId="kitchen", userId="user-123")
    a = run(ctx, action="get_session_analytics", sensorId="bathroom_main")["analytics"]
    assert a["totalSessions"] == 4
    assert (a["activeSessions"], a["completedSessions"]) == (1, 3)
    assert a["totalDurationMinutes"] == 6.0
    assert a["averageDurationMinutes"] == 2.0
    assert a["totalMotionEvents"] == 4
    assert a["averageMotionEventsPerSession"] == 1.0
    assert a["peakHour"] == 23
    assert (a["sessionsWithPlayback"], a["playbackSuccessRate"]) == (1, 25.0)
    # starts at 0 s, 1000 s, 2000 s and 2120 s: three gaps over 2120 s
    assert a["averageTimeBetweenSessionsMinutes"] == round(2120 / 3 / 60, 2)
    assert [d["date"] for d in a["usageByDay"]] == ["2026-02-08"]
    assert a["usageByWeek"][0]["week"] == "2026-W06"
    assert a["usageByMonth"][0]["month"] == "2026-02"
    everyone = run(ctx, action="get_session_analytics", userId="user-123")["analytics"]
    assert everyone["totalSessions"] == 5
    assert everyone["activeSessions"] == 2
    assert [s["sensorId"] for s in everyone["mostActiveSensors"]] == ["bathroom_main", "kitchen"]
    assert [d["date"] for d in everyone["usageByDay"]] == ["2026-02-08", "2026-02-09"]
    bounded = run(
        ctx, action="get_session_analytics", startDate="2026-02-09", endDate="2026-02-09"
    )["analytics"]
    assert (bounded["totalSessions"], bounded["peakHour"]) == (1, 0)


def test_a_locked_database_is_a_500_not_a_traceback(
    ctx: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(ctx, action="get_active_session", sensorId="bathroom_main")  # the file exists
    monkeypatch.setattr("hub.store.database.BUSY_TIMEOUT_MS", 10)  # fail fast, not in 5 s
    other = sqlite3.connect(ctx.config.hub.database)
    other.execute("BEGIN EXCLUSIVE")  # someone else holds the write lock
    try:
        response = run(ctx, action="create_session", sensorId="bathroom_main")
    finally:
        other.rollback()
        other.close()
    assert (response["statusCode"], response["error"]) == (500, "InternalError")
    assert "locked" in response["message"]
