"""The schema, only ever changed through named migrations (never edit an applied one).

Column names of `sessions` are the contract's record keys, so a row *is* the record
(plus bookkeeping columns: playbackNote, version, syncedVersion).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("spottypotty")
KNOWN_MIGRATIONS: list[str] = []

_Migration = Callable[[Database], None]


def _named(name: str) -> Callable[[_Migration], _Migration]:
    KNOWN_MIGRATIONS.append(name)
    register: Callable[[_Migration], _Migration] = MIGRATIONS(name=name)
    return register


def _run_script(db: Database, script: str) -> None:
    # Statement by statement: sqlite3's executescript() would COMMIT the migration's
    # transaction halfway and break "all of it or none of it".
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


@_named("0001_initial")
def _initial(db: Database) -> None:
    _run_script(
        db,
        """
        CREATE TABLE sensors (
            sensorId TEXT PRIMARY KEY,
            userId TEXT,
            name TEXT,
            lastSeen REAL,
            batteryLevel INTEGER,
            signalStrength INTEGER,
            firmwareVersion TEXT,
            availability TEXT CHECK (availability IN ('online', 'offline')),
            availabilityChangedAt REAL,
            createdAt TEXT NOT NULL,
            updatedAt TEXT NOT NULL
        );

        CREATE TABLE sessions (
            sessionId TEXT NOT NULL UNIQUE,
            sensorId TEXT NOT NULL,
            userId TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('active', 'completed')),
            startTime INTEGER NOT NULL,
            startTimeISO TEXT NOT NULL,
            lastMotionTime TEXT NOT NULL,
            motionEventsCount INTEGER NOT NULL CHECK (motionEventsCount >= 0),
            playbackStarted INTEGER NOT NULL DEFAULT 0,
            spotifyDeviceId TEXT,
            spotifyContextUri TEXT,
            endTime TEXT,
            durationMinutes REAL,
            playbackStopped INTEGER,
            createdAt TEXT NOT NULL,
            updatedAt TEXT NOT NULL,
            ttl INTEGER NOT NULL,
            playbackNote TEXT,
            -- change tracking for the cloud sync: a row is due while version > syncedVersion
            version INTEGER NOT NULL DEFAULT 1,
            syncedVersion INTEGER NOT NULL DEFAULT 0,
            CHECK ((status = 'active') = (endTime IS NULL)),
            -- Clustered by sensor and time: a sensor's month of sessions is a few adjacent
            -- pages, not hundreds of pages shared with every other sensor.
            PRIMARY KEY (sensorId, startTime, sessionId)
        ) WITHOUT ROWID;
        -- The seed created duplicate active sessions; the database now refuses them.
        CREATE UNIQUE INDEX sessions_one_active_per_sensor
            ON sessions (sensorId) WHERE status = 'active';
        -- Narrow copies of the clustering order for one user / everyone, and for one sensor
        -- (so its analytics read a small index, not the wide rows): index-only aggregates.
        CREATE INDEX sessions_by_sensor_time ON sessions (
            sensorId, startTime, sessionId,
            status, motionEventsCount, durationMinutes, playbackStarted
        );
        CREATE INDEX sessions_by_user_time ON sessions (
            userId, startTime, sessionId,
            status, motionEventsCount, durationMinutes, playbackStarted, sensorId
        );
        CREATE INDEX sessions_by_time ON sessions (
            startTime, sensorId, status, motionEventsCount, durationMinutes, playbackStarted
        );
        CREATE INDEX sessions_unsynced ON sessions (sessionId) WHERE version > syncedVersion;

        CREATE TABLE motion_events (
            eventId TEXT PRIMARY KEY,
            sensorId TEXT NOT NULL,
            sessionId TEXT REFERENCES sessions (sessionId) ON DELETE SET NULL,
            timestamp REAL NOT NULL,
            receivedAt REAL NOT NULL,
            source TEXT NOT NULL,
            sensorTimestamp REAL,
            seq INTEGER,
            batteryLevel INTEGER,
            signalStrength INTEGER,
            firmwareVersion TEXT,
            late INTEGER NOT NULL DEFAULT 0,
            ttl INTEGER NOT NULL,
            synced INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX motion_events_by_sensor_time ON motion_events (sensorId, timestamp);
        CREATE INDEX motion_events_by_session ON motion_events (sessionId);
        CREATE INDEX motion_events_unsynced ON motion_events (eventId) WHERE synced = 0;
        """,
    )


@_named("0002_hub_identity")
def _hub_identity(db: Database) -> None:
    # Small facts about this hub, e.g. `hubId`: the stable id its cloud items carry so
    # several hubs can share one DynamoDB table (made on the first sync).
    db.execute("CREATE TABLE hub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@_named("0003_playback_memory")
def _playback_memory(db: Database) -> None:
    _run_script(
        db,
        """
        -- Spotify device ids learned from the names sensors give: a speaker asleep when the
        -- hub starts (off the device list) is still reached by its id.
        CREATE TABLE spotify_devices (
            name TEXT PRIMARY KEY,          -- casefolded, as configured
            deviceId TEXT NOT NULL,
            seenAt REAL NOT NULL
        );
        -- Where a sensor's (room's) music was paused, per context, to resume there next time.
        CREATE TABLE resume_points (
            sensorId TEXT NOT NULL,
            contextUri TEXT NOT NULL,
            itemUri TEXT NOT NULL,
            positionMs INTEGER NOT NULL CHECK (positionMs >= 0),
            keptAt REAL NOT NULL,
            PRIMARY KEY (sensorId, contextUri)
        ) WITHOUT ROWID;
        """,
    )


@_named("0004_clock_confirmation")
def _clock_confirmation(db: Database) -> None:
    # Times recorded before the system clock was synchronised (a Pi has no RTC): the boot
    # and the wall-minus-monotonic offset they were made with, so they can be corrected
    # once it is (hub/clock.py). NULL: the times are confirmed. Unconfirmed rows are not
    # uploaded by the sync.
    _run_script(
        db,
        """
        ALTER TABLE sessions ADD COLUMN clockBoot TEXT;
        ALTER TABLE sessions ADD COLUMN clockBase REAL;
        ALTER TABLE motion_events ADD COLUMN clockBoot TEXT;
        ALTER TABLE motion_events ADD COLUMN clockBase REAL;
        CREATE INDEX sessions_unconfirmed ON sessions (clockBoot) WHERE clockBoot IS NOT NULL;
        CREATE INDEX motion_events_unconfirmed ON motion_events (clockBoot)
            WHERE clockBoot IS NOT NULL
        """,
    )


@_named("0005_end_reason")
def _end_reason(db: Database) -> None:
    # Why each session ended (timeout, presence_cleared, door_opened, max_hold,
    # ended_by_request, recovered): NULL for sessions ended before it was recorded. And its
    # short decision trace (JSON: which sensor, which rule, what the player was asked and
    # answered), written only when a step is added, never per motion.
    db.execute("ALTER TABLE sessions ADD COLUMN endReason TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN decisions TEXT")
