"""Human-readable reports built from operation responses (shared by the CLI and the demo)."""

from __future__ import annotations

from typing import Any

from hub.cli.render import bar_chart, column_chart, table


def sessions_report(response: dict[str, Any]) -> str:
    rows = [
        (
            s["sessionId"],
            s["sensorId"],
            s["status"],
            s["startTimeISO"][:19].replace("T", " "),
            s.get("durationMinutes"),
            s["motionEventsCount"],
            s["playbackStarted"],
        )
        for s in response["sessions"]
    ]
    headers = ["session", "sensor", "status", "start (UTC)", "minutes", "motion", "music"]
    more = " (more: raise --limit or narrow --since/--until)" if response["hasMore"] else ""
    return f"{table(headers, rows)}\n{response['count']} session(s){more}"


def explain_report(explained: dict[str, Any]) -> str:
    """A session and its decision trace, for people."""
    s = explained["session"]
    facts = [
        ("session", s["sessionId"]),
        ("room (sensorId)", s["sensorId"]),
        ("status", s["status"]),
        ("start", s["startTimeISO"]),
        ("last motion", s["lastMotionTime"]),
        ("end", s.get("endTime", "-")),
        ("end reason", s.get("endReason", "-")),
        ("motion events", s["motionEventsCount"]),
        ("music", "started" if s["playbackStarted"] else "not started"),
    ]
    steps = [
        (d["at"][11:23], d["sensor"] or "", d["rule"], d["detail"]) for d in explained["decisions"]
    ]
    trace = (
        table(["time (UTC)", "sensor", "rule", "what happened"], steps) if steps else "(no trace)"
    )
    return f"{table(['', 'session'], facts)}\n\n{trace}"


def analytics_report(a: dict[str, Any]) -> str:
    peak = "-" if a["peakHour"] is None else f"{a['peakHour']:02d}:00"
    summary = [
        ("sessions", a["totalSessions"]),
        ("active / completed", f"{a['activeSessions']} / {a['completedSessions']}"),
        ("motion events", a["totalMotionEvents"]),
        ("total minutes", a["totalDurationMinutes"]),
        ("average minutes (completed)", a["averageDurationMinutes"]),
        ("motion events per session", a["averageMotionEventsPerSession"]),
        ("peak hour", peak),
        ("sessions with music", f"{a['sessionsWithPlayback']} ({a['playbackSuccessRate']}%)"),
        ("minutes between sessions", a["averageTimeBetweenSessionsMinutes"]),
    ]
    if "timeout" in a:
        summary.append(("timeout", a["timeout"]["text"]))
    parts = [table(["metric", "value"], summary)]
    if a["totalSessions"]:
        parts.append(column_chart("Sessions by hour of day", a["hourlyDistribution"]))
        days = a["usageByDay"][-14:]
        parts.append(
            bar_chart(
                "Sessions per day (last 14 days with sessions)",
                [d["date"] for d in days],
                [d["sessions"] for d in days],
            )
        )
        sensors = a["mostActiveSensors"]
        if len(sensors) > 1:
            rows = [
                (s["sensorId"], s["sessions"], s["motionEvents"], s["durationMinutes"])
                for s in sensors
            ]
            parts.append(table(["most active sensors", "sessions", "motion", "minutes"], rows))
    return "\n\n".join(parts)


def sensors_report(sensors: list[dict[str, Any]]) -> str:
    def short(stamp: str | None) -> str | None:
        return stamp[:16].replace("T", " ") if stamp else None

    rows = [
        (
            s["sensorId"],
            s["name"] or None,
            s["enabled"],
            s["source"],
            s["availability"] or "unknown",
            short(s["lastMotionTime"]),
            None if s["batteryLevel"] is None else f"{s['batteryLevel']}%",
            None if s["signalStrength"] is None else f"{s['signalStrength']} dBm",
            s["firmwareVersion"],
            "yes" if s["activeSessionId"] else "no",
        )
        for s in sensors
    ]
    headers = [
        "sensor",
        "name",
        "enabled",
        "source",
        "status",
        "last motion (UTC)",
        "battery",
        "signal",
        "firmware",
        "in session",
    ]
    return f"{table(headers, rows)}\n{len(sensors)} sensor(s)"
