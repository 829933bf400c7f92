"""The cloud sync against dynalite, a DynamoDB-compatible server that refuses what DynamoDB
refuses (moto does not): tables created from deploy/cloud/sessions-table.yaml itself.

dynalite comes from `scripts/install-dynalite.sh` (var/node); the fixture runs it when
missing. AWS credentials are fake, from the environment, never real ones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from sqlite_utils import Database

from hub.config import CloudSection
from hub.model import Session, SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.sync.cloud_read import query_sessions
from hub.sync.mapping import decode_item
from hub.sync.outbox import Outbox
from hub.sync.uploader import Backoff, Uploader, make_client, sync
from tests.broker import accepts, free_port
from tests.cli import spottypotty

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "var" / "node"
DYNALITE = NODE_DIR / "node_modules" / ".bin" / "dynalite"
TEMPLATE = REPO / "deploy" / "cloud" / "sessions-table.yaml"
STARTUP_LIMIT = 10.0
SESSIONS_TABLE = "Sessions-test"
EVENTS_TABLE = "MotionEvents-test"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-2",
    "AWS_EC2_METADATA_DISABLED": "true",
}

pytestmark = pytest.mark.integration

# CloudFormation's short tags (!Ref, !Sub, …) as plain mappings, so js-yaml can read the file.
_YAML_TO_JSON = """
const yaml = require(process.argv[1]);
const fs = require("fs");
const tags = [["Ref", "scalar"], ["Condition", "scalar"], ["Sub", "scalar"], ["Sub", "sequence"],
  ["GetAtt", "scalar"], ["GetAtt", "sequence"], ["Equals", "sequence"], ["If", "sequence"],
  ["Not", "sequence"], ["And", "sequence"], ["Or", "sequence"], ["Join", "sequence"],
  ["Select", "sequence"], ["Split", "sequence"], ["FindInMap", "sequence"],
  ["Base64", "scalar"], ["ImportValue", "scalar"], ["GetAZs", "scalar"], ["Cidr", "sequence"]];
const types = tags.map(([name, kind]) => new yaml.Type(`!${name}`, {kind,
  construct: (data) => ({[name === "Ref" || name === "Condition" ? name : `Fn::${name}`]: data}),
}));
const schema = yaml.DEFAULT_SCHEMA.extend(types);
process.stdout.write(JSON.stringify(yaml.load(fs.readFileSync(process.argv[2], "utf8"), {schema})));
"""


def ensure_dynalite() -> None:
    if DYNALITE.exists() and (NODE_DIR / "node_modules" / "js-yaml").is_dir():
        return
    if shutil.which("npm") is None:
        pytest.fail("dynalite needs node and npm: run scripts/install-dynalite.sh", pytrace=False)
    subprocess.run(["bash", str(REPO / "scripts" / "install-dynalite.sh")], check=True)


def load_template() -> dict[str, Any]:
    """deploy/cloud/sessions-table.yaml as JSON (via js-yaml, with CloudFormation's tags)."""
    ensure_dynalite()
    result = subprocess.run(
        ["node", "-e", _YAML_TO_JSON, str(NODE_DIR / "node_modules" / "js-yaml"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def create_table_requests(names: dict[str, str]) -> list[dict[str, Any]]:
    """CreateTable requests from the template's table resources, renamed per `names`."""
    resources = load_template()["Resources"]
    requests = []
    for logical, table in names.items():
        properties = resources[logical]["Properties"]
        request = {
            key: properties[key]
            for key in (
                "AttributeDefinitions",
                "KeySchema",
                "GlobalSecondaryIndexes",
                "BillingMode",
            )
        }
        requests.append({"TableName": table, **request})
    return requests


class Dynalite:
    """dynalite on a free loopback port; with `path`, its data survives a restart."""

    def __init__(self, path: Path | None = None) -> None:
        ensure_dynalite()
        self.port = free_port()
        self.path = path
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(DYNALITE), "--port", str(self.port), "--host", "127.0.0.1"]
        if self.path is not None:
            command += ["--path", str(self.path)]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        while not accepts(self.port):
            if self._process.poll() is not None:
                _, stderr = self._process.communicate()
                self._process = None
                pytest.fail(f"dynalite exited at startup: {stderr.decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"dynalite did not answer within {STARTUP_LIMIT} s")
            time.sleep(0.02)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def cloud(self, *, events: bool = False, table: str = SESSIONS_TABLE) -> CloudSection:
        return CloudSection(
            enabled=True,
            table=table,
            events_table=EVENTS_TABLE if events else "",
            region="us-east-2",
            endpoint_url=self.endpoint,
        )

    def client(self) -> DynamoDBClient:
        return make_client(self.cloud())

    def create_tables(self) -> None:
        client = self.client()
        for request in create_table_requests(
            {"SessionsTable": SESSIONS_TABLE, "MotionEventsTable": EVENTS_TABLE}
        ):
            client.create_table(**request)
            while client.describe_table(TableName=request["TableName"])["Table"]["TableStatus"] != (
                "ACTIVE"
            ):
                time.sleep(0.02)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws files of whoever runs the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def dynalite(tmp_path: Path, fake_aws: None) -> Iterator[Dynalite]:
    server = Dynalite(tmp_path / "dynalite-data")
    server.start()
    server.create_tables()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    db = open_database(tmp_path / "hub.db")
    yield db
    close_database(db)


# -- helpers ---------------------------------------------------------------------------------


def _active(number: int, start: float, sensor: str = "bath") -> Session:
    return open_session(
        session_id=f"session-{sensor}-{int(start)}-{number:08x}",
        sensor_id=sensor,
        user_id="user-1",
        start=start,
        now=start,
        ttl_days=30,
        spotify_device_id="device-1",
        spotify_context_uri="spotify:playlist:abc",
    )


def _completed(number: int, start: float, sensor: str = "bath") -> Session:
    return _active(number, start, sensor).with_changes(
        status=SessionStatus.COMPLETED,
        end=start + 333.3,
        last_motion=start + 33.3,
        updated_at=start + 333.3,
        motion_events_count=4,
        playback_started=True,
        playback_stopped=True,
    )


def _seed(db: Database, sessions: list[Session]) -> None:
    SessionRepository(db).save_many([(s, True, None) for s in sessions])


def _uploader(server: Dynalite, **kwargs: Any) -> Uploader:
    kwargs.setdefault("backoff", Backoff(base=0.001, cap=0.01, tries=3))
    return Uploader(server.cloud(), **kwargs)


def _scan(client: DynamoDBClient, table: str = SESSIONS_TABLE) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            key = "sessionId" if table == SESSIONS_TABLE else "eventId"
            assert str(item[key]["S"]) not in items
            items[str(item[key]["S"])] = dict(item)
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class _Wrapper:
    """A real client, with one method intercepted (tests only)."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.inner = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- tests -----------------------------------------------------------------------------------


def test_items_have_exactly_the_record_and_its_types(dynalite: Dynalite, store: Database) -> None:
    done, active = _completed(1, T0), _active(2, T0 + 3_600, sensor="kitchen")
    _seed(store, [done, active])

    summary = sync(Outbox(store), _uploader(dynalite))

    assert summary.ok, summary
    assert summary.uploaded["sessions"] == 2
    items = _scan(dynalite.client())
    hub_id = Outbox(store).hub_id()
    item = items[done.session_id]
    assert item["startTime"] == {"N": str(int(T0))}
    assert item["ttl"] == {"N": str(done.ttl)}
    assert item["durationMinutes"] == {"N": "5.55"}  # round(5.555, 2): as to_record()
    assert item["motionEventsCount"] == {"N": "4"}
    assert item["playbackStarted"] == {"BOOL": True}
    assert item["playbackStopped"] == {"BOOL": True}
    assert item["hubId"] == {"S": hub_id}
    assert set(item) == {*done.to_record(), "hubId"}
    assert decode_item(item) == done.to_record() | {"hubId": hub_id}
    # Absent values are omitted, not NULL.
    assert set(items[active.session_id]) == {*active.to_record(), "hubId"}
    assert "endTime" not in items[active.session_id]
    for record in items.values():
        assert all(
            len(value) == 1 and next(iter(value)) in {"S", "N", "BOOL"} for value in record.values()
        )


def test_a_second_run_uploads_nothing(dynalite: Dynalite, store: Database) -> None:
    _seed(store, [_completed(n, T0 + n * 600) for n in range(30)])
    assert sync(Outbox(store), _uploader(dynalite)).uploaded["sessions"] == 30

    calls: list[str] = []
    wrapper = _Wrapper(dynalite.client())
    wrapper.batch_write_item = lambda **_: calls.append("batch")  # type: ignore[attr-defined]
    again = sync(Outbox(store), _uploader(dynalite, client=cast("DynamoDBClient", wrapper)))

    assert again.ok
    assert again.uploaded["sessions"] == 0
    assert sum(again.due.values()) == 0
    assert calls == []


def test_an_active_session_uploaded_again_once_completed(
    dynalite: Dynalite, store: Database
) -> None:
    active = _active(1, T0)
    _seed(store, [active])
    sync(Outbox(store), _uploader(dynalite))
    assert _scan(dynalite.client())[active.session_id]["status"] == {"S": "active"}

    completed = _completed(1, T0)
    SessionRepository(store).save(completed, created=False)
    summary = sync(Outbox(store), _uploader(dynalite))

    assert summary.uploaded["sessions"] == 1
    item = _scan(dynalite.client())[active.session_id]
    assert decode_item(item) == completed.to_record() | {"hubId": Outbox(store).hub_id()}
    assert item["status"] == {"S": "completed"}
    assert "endTime" in item


def test_a_row_changed_during_its_upload_stays_due(dynalite: Dynalite, store: Database) -> None:
    active = _active(1, T0)
    _seed(store, [active])
    repo = SessionRepository(store)
    wrapper = _Wrapper(dynalite.client())

    def batch_write_item(**kwargs: Any) -> Any:
        # The daemon completes the session while this very upload is on the wire.
        repo.save(_completed(1, T0), created=False)
        return wrapper.inner.batch_write_item(**kwargs)

    wrapper.batch_write_item = batch_write_item  # type: ignore[attr-defined]
    first = sync(Outbox(store), _uploader(dynalite, client=cast("DynamoDBClient", wrapper)))
    assert first.uploaded["sessions"] == 1
    assert Outbox(store).count_due_sessions() == 1  # the completed version is not in the cloud

    second = sync(Outbox(store), _uploader(dynalite))
    assert second.uploaded["sessions"] == 1
    assert _scan(dynalite.client())[active.session_id]["status"] == {"S": "completed"}
    assert Outbox(store).count_due_sessions() == 0


def test_killing_the_server_midway_then_rerunning_gives_exactly_the_rows(
    dynalite: Dynalite, store: Database
) -> None:
    sessions = [_completed(n, T0 + n * 60, sensor=f"s{n % 4}") for n in range(600)]
    _seed(store, sessions)
    wrapper = _Wrapper(dynalite.client())
    calls = 0

    def batch_write_item(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 7:  # the 7th request finds the server gone
            dynalite.stop(signal.SIGKILL)
        return wrapper.inner.batch_write_item(**kwargs)

    wrapper.batch_write_item = batch_write_item  # type: ignore[attr-defined]
    sleeps: list[float] = []
    broken = sync(
        Outbox(store),
        _uploader(dynalite, client=cast("DynamoDBClient", wrapper), sleep=sleeps.append),
    )

    assert not broken.ok
    assert broken.stopped is not None
    assert "network error" in broken.stopped
    assert broken.uploaded["sessions"] == 6 * 25
    assert len(sleeps) == 2  # tries=3: two pauses, then the run gave up
    assert Outbox(store).count_due_sessions() == 600 - 150

    dynalite.start()  # same port, same data directory
    resumed = sync(Outbox(store), _uploader(dynalite))

    assert resumed.ok, resumed
    assert resumed.uploaded["sessions"] == 450
    items = _scan(dynalite.client())
    assert sorted(items) == sorted(s.session_id for s in sessions)
    hub_id = Outbox(store).hub_id()
    for session in sessions:
        assert decode_item(items[session.session_id]) == session.to_record() | {"hubId": hub_id}


def test_unprocessed_items_are_retried_with_backoff(dynalite: Dynalite, store: Database) -> None:
    sessions = [_completed(n, T0 + n * 60) for n in range(25)]
    _seed(store, sessions)
    wrapper = _Wrapper(dynalite.client())
    sent: list[int] = []

    def batch_write_item(**kwargs: Any) -> Any:
        # Throttled: the first three answers accept only the first half of what was sent.
        requests = next(iter(kwargs["RequestItems"].values()))
        sent.append(len(requests))
        if len(sent) > 3:
            return wrapper.inner.batch_write_item(**kwargs)
        half = len(requests) // 2
        response = wrapper.inner.batch_write_item(RequestItems={SESSIONS_TABLE: requests[:half]})
        response["UnprocessedItems"] = {SESSIONS_TABLE: requests[half:]}
        return response

    wrapper.batch_write_item = batch_write_item  # type: ignore[attr-defined]
    sleeps: list[float] = []
    uploader = Uploader(
        dynalite.cloud(),
        client=cast("DynamoDBClient", wrapper),
        backoff=Backoff(base=1.0, cap=30.0, tries=5),
        sleep=sleeps.append,
        rng=random.Random(7),
    )
    summary = sync(Outbox(store), uploader)

    assert summary.ok, summary
    assert sent == [25, 13, 7, 4]
    assert summary.retries == 3
    assert len(sleeps) == 3
    assert all(0 <= pause <= 1.0 for pause in sleeps)  # progress each time: the cap stays low
    assert len(_scan(dynalite.client())) == 25


def test_a_stalled_batch_backs_off_exponentially_then_stops(
    dynalite: Dynalite, store: Database
) -> None:
    _seed(store, [_completed(n, T0 + n * 60) for n in range(3)])
    wrapper = _Wrapper(dynalite.client())

    def batch_write_item(**kwargs: Any) -> Any:
        return {"UnprocessedItems": kwargs["RequestItems"]}  # nothing accepted, ever

    wrapper.batch_write_item = batch_write_item  # type: ignore[attr-defined]
    caps: list[float] = []

    class Rng(random.Random):
        def uniform(self, a: float, b: float) -> float:
            caps.append(b)
            return b

    sleeps: list[float] = []
    uploader = Uploader(
        dynalite.cloud(),
        client=cast("DynamoDBClient", wrapper),
        backoff=Backoff(base=0.5, cap=3.0, tries=5),
        sleep=sleeps.append,
        rng=Rng(),
    )
    summary = sync(Outbox(store), uploader)

    assert caps == [1.0, 2.0, 3.0, 3.0]  # base * 2**attempt, capped
    assert sleeps == caps
    assert summary.stopped is not None
    assert "unprocessed" in summary.stopped
    assert Outbox(store).count_due_sessions() == 3


def test_a_permanent_error_on_one_item_does_not_block_the_others(
    dynalite: Dynalite, store: Database
) -> None:
    sessions = [_completed(n, T0 + n * 60) for n in range(40)]
    huge = sessions[10].with_changes(spotify_context_uri="spotify:playlist:" + "x" * 450_000)
    sessions[10] = huge
    _seed(store, sessions)

    summary = sync(Outbox(store), _uploader(dynalite))

    assert not summary.ok
    assert summary.stopped is None
    assert summary.uploaded["sessions"] == 39
    assert [(f.key, f.code) for f in summary.failed] == [(huge.session_id, "ValidationException")]
    assert "size" in summary.failed[0].reason
    assert huge.session_id not in _scan(dynalite.client())
    assert len(_scan(dynalite.client())) == 39
    # Left for the next run, which tries it again (and only it).
    assert Outbox(store).count_due_sessions() == 1
    again = sync(Outbox(store), _uploader(dynalite))
    assert again.due["sessions"] == 1
    assert [f.key for f in again.failed] == [huge.session_id]


def test_a_missing_table_stops_the_run_and_keeps_everything_due(
    dynalite: Dynalite, store: Database
) -> None:
    _seed(store, [_completed(n, T0 + n * 60) for n in range(5)])
    uploader = Uploader(dynalite.cloud(table="NoSuchTable"), backoff=Backoff(tries=2))

    summary = sync(Outbox(store), uploader)

    assert summary.stopped is not None
    assert "ResourceNotFoundException" in summary.stopped
    assert summary.uploaded["sessions"] == 0
    assert Outbox(store).count_due_sessions() == 5


def test_motion_events_go_to_their_table_with_a_numeric_timestamp(
    dynalite: Dynalite, store: Database
) -> None:
    from hub.model import MotionEvent  # noqa: PLC0415

    session = _active(1, T0)
    repo = SessionRepository(store)
    event = MotionEvent(sensor_id="bath", occurred_at=T0 + 0.125, received_at=T0 + 0.2)
    repo.save(session, created=True, event=event)
    repo.record_event(MotionEvent(sensor_id="bath", occurred_at=T0 + 99.5, received_at=T0 + 100))

    summary = sync(Outbox(store), Uploader(dynalite.cloud(events=True)))

    assert summary.ok, summary
    assert summary.uploaded == {"sessions": 1, "events": 2}
    items = _scan(dynalite.client(), EVENTS_TABLE)
    by_time = sorted(items.values(), key=lambda item: float(item["timestamp"]["N"]))
    assert [item["timestamp"] for item in by_time] == [
        {"N": "1767225600.125"},
        {"N": "1767225699.5"},
    ]
    assert by_time[0]["sessionId"] == {"S": session.session_id}
    assert "sessionId" not in by_time[1]
    assert all(
        set(item) <= {"eventId", "sensorId", "sessionId", "timestamp", "ttl", "hubId"}
        for item in by_time
    )
    assert all("N" in item["ttl"] for item in by_time)
    assert Outbox(store).count_due_events() == 0


def test_thirty_days_offline_upload_in_one_run_and_read_back_by_key_condition(
    dynalite: Dynalite, store: Database
) -> None:
    rng = random.Random(30)
    sensors = ["bath", "kitchen", "hall", "loo"]
    sessions = [
        _completed(n, T0 + rng.randrange(30 * 86_400), sensor=rng.choice(sensors))
        for n in range(2_000)
    ]
    _seed(store, sessions)
    seen: list[int] = []

    summary = sync(Outbox(store), _uploader(dynalite), progress=lambda p: seen.append(p.done))

    assert summary.ok, summary
    assert summary.uploaded["sessions"] == 2_000
    assert summary.batches == 80
    assert seen[-1] == 2_000
    assert seen == sorted(seen)

    low, high = T0 + 7 * 86_400, T0 + 14 * 86_400
    expected = sorted(
        (s for s in sessions if s.sensor_id == "bath" and low <= int(s.start) <= high),
        key=lambda s: (int(s.start), s.session_id),
        reverse=True,
    )
    found = query_sessions(dynalite.cloud(), ["bath"], start=low, end=high, limit=10_000)
    assert [r["sessionId"] for r in found] == [s.session_id for s in expected]
    assert all(isinstance(r["startTime"], int) for r in found)
    assert query_sessions(dynalite.cloud(), ["bath", "hall"], start=low, end=high, limit=5)[0][
        "startTime"
    ] == max(
        int(s.start)
        for s in sessions
        if s.sensor_id in {"bath", "hall"} and low <= int(s.start) <= high
    )


# -- the command, as a process ---------------------------------------------------------------


def _sync_command(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return spottypotty("sync", "--config", str(config), *extra, env=os.environ | FAKE_AWS)


def _config(
    tmp_path: Path, server: Dynalite, *, enabled: bool = True, table: str = SESSIONS_TABLE
) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "hub.db"\n\n[cloud]\nenabled = {json.dumps(enabled)}\n'
        f'table = "{table}"\nregion = "us-east-2"\nendpoint_url = "{server.endpoint}"\n',
        encoding="utf-8",
    )
    return path


def test_the_command_prints_progress_and_a_summary(
    dynalite: Dynalite, store: Database, tmp_path: Path
) -> None:
    _seed(store, [_completed(n, T0 + n * 60) for n in range(60)])
    config = _config(tmp_path, dynalite)

    dry = _sync_command(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would upload 60 session(s)" in dry.stdout
    assert Outbox(store).count_due_sessions() == 60

    done = _sync_command(config)
    assert done.returncode == 0, done.stderr
    assert "uploaded 60 of 60 session(s)" in done.stdout
    assert "sessions [" in done.stderr  # plain lines: stderr is no TTY
    assert "60/60 rows" in done.stderr
    assert Outbox(store).count_due_sessions() == 0

    facts = dict(store.execute("SELECT key, value FROM hub_meta").fetchall())
    assert facts["lastSyncResult"] == done.stdout.splitlines()[0]
    synced_at = dt.datetime.fromisoformat(facts["lastSyncAt"])
    assert abs((dt.datetime.now(dt.UTC) - synced_at).total_seconds()) < 120

    nothing = _sync_command(config)
    assert nothing.returncode == 0
    assert "nothing to upload" in nothing.stdout


def test_the_command_exits_non_zero_when_anything_failed(
    dynalite: Dynalite, store: Database, tmp_path: Path
) -> None:
    _seed(store, [_completed(n, T0 + n * 60) for n in range(3)])

    missing = _sync_command(_config(tmp_path, dynalite, table="NoSuchTable"))
    assert missing.returncode == 1
    assert "stopped early" in missing.stdout
    assert "ResourceNotFoundException" in missing.stdout
    assert "3 row(s) left for the next run" in missing.stdout

    off = _sync_command(_config(tmp_path, dynalite, enabled=False))
    assert off.returncode == 1
    assert "cloud sync is off" in off.stderr
    assert Outbox(store).count_due_sessions() == 3


def test_cloud_read_back_matches_home(dynalite: Dynalite, store: Database, tmp_path: Path) -> None:
    sessions = [_completed(n, T0 + n * 3600, sensor=("bath", "hall")[n % 2]) for n in range(30)]
    _seed(store, sessions)
    config = _config(tmp_path, dynalite)
    config.write_text(
        config.read_text() + '\n[[sensors]]\nid = "bath"\nuser_id = "user-1"\n'
        '\n[[sensors]]\nid = "hall"\nuser_id = "user-1"\n'
    )
    assert _sync_command(config).returncode == 0
    env = os.environ | FAKE_AWS
    home = json.loads(spottypotty("analytics", "--json", "--config", str(config), env=env).stdout)
    cloud = spottypotty("analytics", "--cloud", "--json", "--config", str(config), env=env)
    assert cloud.returncode == 0, cloud.stderr
    assert json.loads(cloud.stdout)["analytics"] == home["analytics"]
    listed = spottypotty(
        "sessions",
        "--cloud",
        "--sensor",
        "hall",
        "--limit",
        "5",
        "--json",
        "--config",
        str(config),
        env=env,
    )
    records = json.loads(listed.stdout)["sessions"]
    newest_hall = sorted((s for s in sessions if s.sensor_id == "hall"), key=lambda s: -s.start)
    assert [r["sessionId"] for r in records] == [s.session_id for s in newest_hall[:5]]
