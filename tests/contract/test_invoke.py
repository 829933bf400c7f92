"""The seed's own example events, run unchanged through `spottypotty invoke` as a process.

The events are copied out of the seed document into tests/fixtures/seed-events.json
(its `_source` key says from where and how).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli import spottypotty

SEED_EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "seed-events.json"
_GET_ACTIVE = '{"action": "get_active_session", "sensorId": "x"}'


def seed_events() -> list[dict[str, Any]]:
    document = json.loads(SEED_EVENTS.read_text(encoding="utf-8"))
    return [example["event"] for example in document["events"]]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[hub]
database = "{tmp_path / "hub.db"}"
timezone = "Europe/London"

[[sensors]]
id = "bathroom_main"
user_id = "user-123"
context_uri = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
""",
        encoding="utf-8",
    )
    return path


def invoke(config: Path, stdin: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    done = spottypotty("invoke", "--config", str(config), *extra, stdin=stdin)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_the_seed_document_has_the_six_operations() -> None:
    actions = {e["action"] for e in seed_events()}
    assert actions == {
        "create_session",
        "update_session",
        "end_session",
        "get_active_session",
        "query_sessions",
        "get_session_analytics",
    }


def test_every_seed_example_runs_unchanged(config_file: Path) -> None:
    answers: dict[str, tuple[int, dict[str, Any]]] = {}
    for event in seed_events():
        code, response, stderr = invoke(config_file, json.dumps(event))
        assert "Traceback" not in stderr
        assert response["action"] == event["action"]
        assert isinstance(response["duration_ms"], float)
        assert code == (0 if response["statusCode"] < 400 else 1)
        answers.setdefault(event["action"], (code, response))
    # The seed's examples name "session-123", which does not exist here: a clean 404.
    for action in ("update_session", "end_session"):
        code, response = answers[action]
        assert (code, response["statusCode"], response["error"]) == (
            1,
            404,
            "ResourceNotFoundError",
        )
    for action in (
        "create_session",
        "get_active_session",
        "query_sessions",
        "get_session_analytics",
    ):
        assert answers[action][1]["statusCode"] == 200, answers[action]
    created = answers["create_session"][1]["session"]
    assert re.fullmatch(rf"session-{created['sensorId']}-\d+-[0-9a-f]{{8}}", created["sessionId"])
    assert isinstance(created["startTime"], int)


def test_the_seed_lifecycle_with_real_ids(config_file: Path) -> None:
    events = {e["action"]: e for e in seed_events()}
    _, created, _ = invoke(config_file, json.dumps(events["create_session"]))
    session_id = created["session"]["sessionId"]
    for action in ("update_session", "end_session"):
        event = {**events[action], "sessionId": session_id}
        code, response, _ = invoke(config_file, json.dumps(event))
        assert (code, response["statusCode"]) == (0, 200)
    assert response["session"]["status"] == "completed"
    assert response["session"]["motionEventsCount"] == 2
    code, response, _ = invoke(config_file, json.dumps(events["create_session"]))
    assert (code, response["statusCode"]) == (0, 200)  # the old one ended: a new one is fine
    code, again, _ = invoke(config_file, json.dumps(events["create_session"]))
    assert (code, again["statusCode"], again["activeSessionId"]) == (
        1,
        409,
        response["session"]["sessionId"],
    )


def test_event_from_a_file(tmp_path: Path, config_file: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text('{"action": "get_active_session", "sensorId": "bathroom_main"}')
    code, response, _ = invoke(config_file, "", "--event", str(event_file))
    assert (code, response["statusCode"], response["session"]) == (0, 200, None)


@pytest.mark.parametrize("stdin", ["", "not json", '{"action": ', "[1, 2"])
def test_non_json_is_a_400_not_a_traceback(config_file: Path, stdin: str) -> None:
    code, response, stderr = invoke(config_file, stdin)
    assert code == 1
    assert (response["statusCode"], response["error"]) == (400, "ValidationError")
    assert "Traceback" not in stderr


def test_a_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text("[sessions]\ntimeout_minutes = 'five'\nbogus = 1\n")
    done = spottypotty("invoke", "--config", str(config), stdin=_GET_ACTIVE)
    assert done.returncode == 78
    assert "sessions.timeout_minutes" in done.stderr
    assert "sessions.bogus" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_corrupt_database_is_named_and_left_alone(tmp_path: Path, config_file: Path) -> None:
    database = tmp_path / "hub.db"
    database.write_bytes(b"\x00garbage" * 1000)
    done = spottypotty("invoke", "--config", str(config_file), stdin=_GET_ACTIVE)
    assert done.returncode == 65  # EX_DATAERR, as a broken config is 78 for every command
    assert done.stderr.startswith(f"spottypotty: {database} is damaged (")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert database.read_bytes() == b"\x00garbage" * 1000
