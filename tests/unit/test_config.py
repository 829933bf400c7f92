"""hub.config: the contract's TOML in, frozen dataclasses out, every problem reported at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cli.main import main
from hub.config import (
    BleSection,
    CloudSection,
    HttpSection,
    HubConfig,
    HubSection,
    Moment,
    MqttSection,
    QuietHours,
    SensorConfig,
    SessionsSection,
    SpotifySection,
    load_config,
    parse_config,
)
from hub.errors import ConfigError

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "hub.example.toml"

# contracts §2, verbatim.
CONTRACT_EXAMPLE = """
[hub]
database = "/var/lib/spottypotty/hub.db"
timezone = "Europe/London"          # quiet hours and analytics hours; default: system zone

[mqtt]
host = "127.0.0.1"
port = 1883
username = ""                        # optional
password_file = ""                   # optional
topic_prefix = "sensors"             # motion arrives on {prefix}/{sensorId}/motion

[ble]
enabled = false
adapter = "hci0"

[sessions]
timeout_minutes = 5                  # seed default
debounce_seconds = 10                # bursts inside this window are coalesced
ttl_days = 30                        # seed default

[spotify]
client_id = ""                       # secret comes from env SPOTIFY_CLIENT_SECRET or credentials
redirect_uri = "http://127.0.0.1:8888/callback"
token_cache = "/var/lib/spottypotty/spotify-token.json"   # spotipy cache-file format
api_url = "https://api.spotify.com/v1/"                   # overridable for tests
accounts_url = "https://accounts.spotify.com/"            # overridable for tests
dry_run = false                      # log what would be played, call nothing

[cloud]
enabled = false
table = "SpottyPottySense-Sessions-dev"
events_table = ""                    # optional MotionEvents table
region = "us-east-2"
endpoint_url = ""                    # DynamoDB Local / dynalite; empty = AWS

[http]                               # local API + dashboard
enabled = false
host = "127.0.0.1"                   # a non-loopback host requires token_file
port = 8080
token_file = ""

[[sensors]]
id = "bathroom_main"
user_id = "user-123"
name = "Main bathroom"
spotify_device = "Bathroom speaker"  # a device name or a device id
context_uri = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
shuffle = true
volume = 40
timeout_minutes = 5                  # overrides [sessions]
quiet_hours = { start = "22:00", end = "07:00" }   # may cross midnight
enabled = true
# optional, per source:
ble_address = "54:48:E6:8F:80:A5"
ble_bindkey = "231d39c1d7cc1ab1aee224cd096db932"
mqtt_topic = "bathroom-pir/binary_sensor/motion/state"  # a foreign topic
mqtt_format = "esphome"              # seed | esphome | zigbee2mqtt
"""

BATHROOM = SensorConfig(
    id="bathroom_main",
    user_id="user-123",
    name="Main bathroom",
    spotify_device="Bathroom speaker",
    context_uri="spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
    shuffle=True,
    volume=40,
    timeout_minutes=5.0,
    quiet_hours=QuietHours(start=dt.time(22, 0), end=dt.time(7, 0)),
    enabled=True,
    ble_address="54:48:E6:8F:80:A5",
    ble_bindkey="231d39c1d7cc1ab1aee224cd096db932",
    mqtt_topic="bathroom-pir/binary_sensor/motion/state",
    mqtt_format="esphome",
)

# The smallest valid sensor, for cases that test one key of it.
SENSOR = '[[sensors]]\nid = "s1"\nuser_id = "u1"\n'


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def assert_problem(problems: list[str], path: str, fragment: str = "") -> None:
    """Some problem is about exactly `path` (and mentions `fragment`)."""
    matching = [p for p in problems if p.startswith(f"{path}: ") and fragment in p]
    assert matching, f"no problem at {path!r} mentioning {fragment!r} in {problems}"


# --- valid input -----------------------------------------------------------------------------


def test_contract_example_parses_to_expected_values() -> None:
    config = parse_config(CONTRACT_EXAMPLE, source="hub.toml")

    assert config == HubConfig(
        hub=HubSection(database=Path("/var/lib/spottypotty/hub.db"), timezone="Europe/London"),
        mqtt=MqttSection(),
        ble=BleSection(),
        sessions=SessionsSection(timeout_minutes=5.0, debounce_seconds=10.0, ttl_days=30.0),
        spotify=SpotifySection(),
        cloud=CloudSection(),
        http=HttpSection(),
        sensors=(BATHROOM,),
        source="hub.toml",
    )
    assert config.sensor("bathroom_main") == BATHROOM
    assert config.timeout_seconds("bathroom_main") == 300.0


def test_empty_file_gives_every_default() -> None:
    assert parse_config("") == HubConfig(source="<string>")


def test_sensors_only_file_keeps_section_defaults() -> None:
    config = parse_config(SENSOR)

    assert config == HubConfig(sensors=(SensorConfig(id="s1", user_id="u1"),), source="<string>")
    assert config.timeout_seconds("s1") == 300.0


def test_float_durations_and_zero_debounce_are_accepted() -> None:
    config = parse_config(
        "[sessions]\ntimeout_minutes = 0.05\ndebounce_seconds = 0\nttl_days = 0.5\n"
        + SENSOR
        + "timeout_minutes = 0.5\n"
    )

    assert config.sessions == SessionsSection(
        timeout_minutes=0.05, debounce_seconds=0.0, ttl_days=0.5
    )
    assert config.timeout_seconds("s1") == 30.0


def test_quiet_hours_may_cross_midnight_or_not() -> None:
    config = parse_config(
        SENSOR
        + 'quiet_hours = { start = "22:30", end = "06:45" }\n'
        + '[[sensors]]\nid = "s2"\nuser_id = "u1"\n'
        + 'quiet_hours = { start = "13:00", end = "14:00" }\n'
    )

    crossing, daytime = (sensor.quiet_hours for sensor in config.sensors)
    assert crossing == QuietHours(start=dt.time(22, 30), end=dt.time(6, 45))
    assert daytime == QuietHours(start=dt.time(13, 0), end=dt.time(14, 0))


def test_quiet_hours_accept_toml_local_times() -> None:
    config = parse_config(SENSOR + "quiet_hours = { start = 22:00:00, end = 07:00:00 }\n")

    assert config.sensors[0].quiet_hours == QuietHours(dt.time(22, 0), dt.time(7, 0))


def test_ble_address_and_bindkey_are_normalised() -> None:
    config = parse_config(
        SENSOR
        + 'ble_address = "54:48:e6:8f:80:a5"\nble_bindkey = "231D39C1D7CC1AB1AEE224CD096DB932"\n'
    )

    assert config.sensors[0].ble_address == "54:48:E6:8F:80:A5"
    assert config.sensors[0].ble_bindkey == "231d39c1d7cc1ab1aee224cd096db932"


@pytest.mark.parametrize(
    "text",
    [
        '[hub]\ntimezone = ""',
        '[hub]\ntimezone = "UTC"',
        '[http]\nhost = "0.0.0.0"\ntoken_file = "api-token"',
        '[http]\nhost = "::1"',
        '[http]\nhost = "127.0.0.2"',
        '[http]\nhost = "localhost"',
        '[spotify]\nredirect_uri = "http://[::1]:8888/callback"',
        '[spotify]\nredirect_uri = "https://hub.example.org/callback"',
        '[spotify]\napi_url = "http://127.0.0.1:9999/v1/"',
        '[cloud]\nendpoint_url = "http://127.0.0.1:8000"\nevents_table = "Motion-Events"',
        '[mqtt]\ntopic_prefix = "home/sensors"',
        SENSOR + 'context_uri = "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M"',
        SENSOR + 'context_uri = "spotify:episode:512ojhOuo1ktJprKbVcKyQ"',
        SENSOR + 'mqtt_format = "zigbee2mqtt"\nmqtt_topic = "zigbee2mqtt/hall_motion"',
        SENSOR + 'mqtt_format = "seed"\nmqtt_topic = "custom/topic"',
        SENSOR + 'ble_address = ""\nmqtt_topic = ""\ncontext_uri = ""',
        SENSOR + "volume = 0",
        SENSOR + "volume = 100",
        '[[sensors]]\nid = "A-Za-z_09"\nuser_id = "u"',
    ],
)
def test_accepted_values(text: str) -> None:
    parse_config(text)


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    text = (
        '[hub]\ndatabase = "data/hub.db"\n'
        '[mqtt]\npassword_file = "mqtt-password"\n'
        '[spotify]\ntoken_cache = "/abs/token.json"\n'
        '[http]\ntoken_file = "../api-token"\n'
    )

    config = parse_config(text, base_dir=tmp_path)

    assert config.hub.database == tmp_path / "data/hub.db"
    assert config.mqtt.password_file == str(tmp_path / "mqtt-password")
    assert config.spotify.token_cache == Path("/abs/token.json")
    assert config.http.token_file == str(tmp_path / "../api-token")


def test_without_base_dir_paths_stay_as_written() -> None:
    config = parse_config('[hub]\ndatabase = "hub.db"\n[http]\ntoken_file = ""\n')

    assert config.hub.database == Path("hub.db")
    assert config.http.token_file == ""


# --- one failing case per rule ---------------------------------------------------------------

REJECTED = [
    # (TOML, key path of the problem, fragment of its message)
    ('[hub]\ntimezone = "Mars/Olympus_Mons"', "hub.timezone", "IANA"),
    ('[hub]\ntimezone = "/etc/localtime"', "hub.timezone", "IANA"),
    ('[hub]\ndatabase = ""', "hub.database", "empty"),
    ("[hub]\ndatabase = 5", "hub.database", "string"),
    ('[mqtt]\nhost = ""', "mqtt.host", "empty"),
    ("[mqtt]\nport = 0", "mqtt.port", "from 1 to 65535, got 0"),
    ("[mqtt]\nport = 65536", "mqtt.port", "got 65536"),
    ("[mqtt]\nport = true", "mqtt.port", "got true"),
    ('[mqtt]\nport = "1883"', "mqtt.port", "integer"),
    ("[mqtt]\nport = 1883.0", "mqtt.port", "integer"),
    ('[mqtt]\ntopic_prefix = ""', "mqtt.topic_prefix", "empty"),
    ('[mqtt]\ntopic_prefix = "sensors/+"', "mqtt.topic_prefix", "wildcards"),
    ('[mqtt]\ntopic_prefix = "sensors/#"', "mqtt.topic_prefix", "wildcards"),
    ('[mqtt]\ntopic_prefix = "/sensors"', "mqtt.topic_prefix", "start or end"),
    ('[mqtt]\ntopic_prefix = "sensors/"', "mqtt.topic_prefix", "start or end"),
    ('[mqtt]\nusername = "a\\u0000b"', "mqtt.username", "control"),
    ("[ble]\nenabled = 1", "ble.enabled", "true or false"),
    ('[ble]\nadapter = ""', "ble.adapter", "empty"),
    ("[sessions]\ntimeout_minutes = 0", "sessions.timeout_minutes", "greater than 0"),
    ("[sessions]\ntimeout_minutes = -1.5", "sessions.timeout_minutes", "got -1.5"),
    ("[sessions]\ntimeout_minutes = true", "sessions.timeout_minutes", "got true"),
    ('[sessions]\ntimeout_minutes = "5"', "sessions.timeout_minutes", "number"),
    ("[sessions]\ntimeout_minutes = inf", "sessions.timeout_minutes", "got inf"),
    ("[sessions]\ntimeout_minutes = nan", "sessions.timeout_minutes", "got nan"),
    ("[sessions]\ndebounce_seconds = -1", "sessions.debounce_seconds", "0 or more"),
    ("[sessions]\ndebounce_seconds = false", "sessions.debounce_seconds", "got false"),
    ("[sessions]\nttl_days = 0", "sessions.ttl_days", "greater than 0"),
    ("[sessions]\nttl_days = 36501", "sessions.ttl_days", "at most 36500 days"),
    ("[sessions]\ntimeout_minutes = 1" + "0" * 400, "sessions.timeout_minutes", "at most"),
    (
        '[spotify]\nredirect_uri = "http://localhost:8888/callback"',
        "spotify.redirect_uri",
        "use 127.0.0.1",
    ),
    (
        '[spotify]\nredirect_uri = "https://LocalHost:8888/callback"',
        "spotify.redirect_uri",
        '"https://127.0.0.1:8888/callback"',
    ),
    ('[spotify]\nredirect_uri = "myapp://callback"', "spotify.redirect_uri", "http"),
    ('[spotify]\nredirect_uri = "http://192.168.1.5:8888/cb"', "spotify.redirect_uri", "https"),
    ('[spotify]\napi_url = "api.spotify.com"', "spotify.api_url", "URL"),
    ('[spotify]\naccounts_url = "ftp://accounts.spotify.com/"', "spotify.accounts_url", "URL"),
    ('[spotify]\napi_url = "http://host:port/"', "spotify.api_url", "URL"),
    ('[spotify]\ntoken_cache = ""', "spotify.token_cache", "empty"),
    ('[spotify]\ndry_run = "no"', "spotify.dry_run", "true or false"),
    ('[cloud]\nendpoint_url = "localhost:8000"', "cloud.endpoint_url", "URL"),
    ('[cloud]\ntable = "x"', "cloud.table", "DynamoDB table name"),
    ('[cloud]\nevents_table = "bad name"', "cloud.events_table", "DynamoDB table name"),
    ('[cloud]\nregion = ""', "cloud.region", "empty"),
    ('[http]\nhost = "0.0.0.0"', "http.token_file", "not loopback"),
    ('[http]\nhost = "hub.lan"\ntoken_file = ""', "http.token_file", "required"),
    ('[http]\nhost = ""', "http.host", "empty"),
    ("[http]\nport = 70000", "http.port", "got 70000"),
    # sensors
    ("[sensors]\nid = 1", "sensors", "array of tables"),
    ("sensors = [1]", "sensors[0]", "must be a table"),
    ('[[sensors]]\nuser_id = "u1"', "sensors[0].id", "required"),
    ('[[sensors]]\nid = "s1"', "sensors[0].user_id", "required"),
    ('[[sensors]]\nid = "s1"\nuser_id = " "', "sensors[0].user_id", "empty"),
    ('[[sensors]]\nid = "bath room"\nuser_id = "u"', "sensors[0].id", 'got "bath room"'),
    ('[[sensors]]\nid = "a/b"\nuser_id = "u"', "sensors[0].id", "MQTT topic level"),
    ('[[sensors]]\nid = "a+"\nuser_id = "u"', "sensors[0].id", "MQTT topic level"),
    (f'[[sensors]]\nid = "{"x" * 65}"\nuser_id = "u"', "sensors[0].id", "1-64"),
    ('[[sensors]]\nid = ""\nuser_id = "u"', "sensors[0].id", "1-64"),
    ('[[sensors]]\nid = 7\nuser_id = "u"', "sensors[0].id", "string"),
    (SENSOR + SENSOR, "sensors[1].id", "already used by sensors[0]"),
    (SENSOR + "volume = 140", "sensors[0].volume", "must be an integer from 0 to 100, got 140"),
    (SENSOR + "volume = -1", "sensors[0].volume", "got -1"),
    (SENSOR + "volume = 40.0", "sensors[0].volume", "integer"),
    (SENSOR + "volume = true", "sensors[0].volume", "got true"),
    (SENSOR + "timeout_minutes = 0", "sensors[0].timeout_minutes", "greater than 0"),
    (SENSOR + "timeout_minutes = false", "sensors[0].timeout_minutes", "got false"),
    (SENSOR + "shuffle = 1", "sensors[0].shuffle", "true or false"),
    (SENSOR + 'enabled = "yes"', "sensors[0].enabled", "true or false"),
    (SENSOR + 'quiet_hours = "22:00-07:00"', "sensors[0].quiet_hours", "table"),
    (SENSOR + 'quiet_hours = { start = "22:00" }', "sensors[0].quiet_hours.end", "required"),
    (SENSOR + 'quiet_hours = { end = "07:00" }', "sensors[0].quiet_hours.start", "required"),
    (
        SENSOR + 'quiet_hours = { start = "24:00", end = "07:00" }',
        "sensors[0].quiet_hours.start",
        '"HH:MM"',
    ),
    (
        SENSOR + 'quiet_hours = { start = "22:00", end = "7:00" }',
        "sensors[0].quiet_hours.end",
        'got "7:00"',
    ),
    (
        SENSOR + 'quiet_hours = { start = "22:00", end = 700 }',
        "sensors[0].quiet_hours.end",
        "got 700",
    ),
    (
        SENSOR + 'quiet_hours = { start = "22:00", end = "22:00" }',
        "sensors[0].quiet_hours.end",
        "differ from start",
    ),
    (
        SENSOR + 'quiet_hours = { start = "22:00", end = "07:00", days = 5 }',
        "sensors[0].quiet_hours.days",
        "unknown key",
    ),
    (SENSOR + 'ble_address = "54:48:E6:8F:80"', "sensors[0].ble_address", "MAC"),
    (SENSOR + 'ble_address = "54-48-E6-8F-80-A5"', "sensors[0].ble_address", "MAC"),
    (
        SENSOR + 'ble_address = "aa:bb:cc:dd:ee:ff"\nble_bindkey = "0123456789abcdef"',
        "sensors[0].ble_bindkey",
        "exactly 32 hex characters, got 16 characters",
    ),
    (
        SENSOR + 'ble_address = "aa:bb:cc:dd:ee:ff"\nble_bindkey = "' + "g" * 32 + '"',
        "sensors[0].ble_bindkey",
        "32 hex",
    ),
    (
        SENSOR + 'ble_bindkey = "231d39c1d7cc1ab1aee224cd096db932"',
        "sensors[0].ble_bindkey",
        "only allowed together with ble_address",
    ),
    (
        SENSOR + 'ble_address = "aa:bb:cc:dd:ee:ff"\nble_bindkey = "' + "a" * 32 + '\\n"',
        "sensors[0].ble_bindkey",
        "got 33 characters",
    ),
    ('[[sensors]]\nid = "s1\\n"\nuser_id = "u"', "sensors[0].id", "control characters"),
    (SENSOR + 'mqtt_format = "tasmota"', "sensors[0].mqtt_format", 'got "tasmota"'),
    (SENSOR + 'mqtt_format = "esphome"', "sensors[0].mqtt_topic", "required"),
    (SENSOR + 'mqtt_format = "zigbee2mqtt"', "sensors[0].mqtt_topic", "zigbee2mqtt"),
    (SENSOR + 'mqtt_format = "esphome"\nmqtt_topic = ""', "sensors[0].mqtt_topic", "required"),
    (SENSOR + 'mqtt_topic = "zigbee2mqtt/+"', "sensors[0].mqtt_topic", "wildcards"),
    (SENSOR + 'mqtt_topic = "zigbee2mqtt/#"', "sensors[0].mqtt_topic", "wildcards"),
    (SENSOR + 'context_uri = "spotify:user:me"', "sensors[0].context_uri", "Spotify URI"),
    (SENSOR + 'context_uri = "https://example.com/x"', "sensors[0].context_uri", "Spotify"),
    (SENSOR + 'context_uri = "spotify:playlist:"', "sensors[0].context_uri", "Spotify URI"),
    (SENSOR + "name = 5", "sensors[0].name", "string"),
    (SENSOR + "spotify_device = []", "sensors[0].spotify_device", "got an array"),
    (SENSOR + "colour = 5", "sensors[0].colour", "unknown key"),
    # unknown keys at every level
    ("[hubb]\ndatabase = 'x'", "hubb", "did you mean 'hub'?"),
    ("verbose = true", "verbose", "unknown key"),
    ("[mqtt]\nprot = 1883", "mqtt.prot", "did you mean 'port'?"),
    ("[http.extra]\nx = 1", "http.extra", "unknown key"),
    ("hub = 5", "hub", "must be a table, got 5"),
    ('"a.b" = 1', '"a.b"', "unknown key"),
]


@pytest.mark.parametrize(("text", "path", "fragment"), REJECTED)
def test_rejected_values_name_their_key_path(text: str, path: str, fragment: str) -> None:
    assert_problem(problems_of(text), path, fragment)


def test_unknown_key_suggests_the_closest_name() -> None:
    problems = problems_of("[sessions]\ntimeout_minuts = 3\n")

    assert problems == ["sessions.timeout_minuts: unknown key (did you mean 'timeout_minutes'?)"]


def test_unknown_key_without_close_match_lists_the_known_keys() -> None:
    problems = problems_of("[ble]\nfrobnicate = 3\n")

    assert problems == ["ble.frobnicate: unknown key (expected one of: adapter, enabled)"]


def test_volume_problem_is_worded_for_people() -> None:
    problems = problems_of(SENSOR + SENSOR.replace("s1", "s2") + "volume = 140\n")

    assert problems == ["sensors[1].volume: must be an integer from 0 to 100, got 140"]


def test_duplicates_are_found_across_sensors_case_insensitively() -> None:
    problems = problems_of(
        SENSOR
        + 'ble_address = "aa:bb:cc:dd:ee:ff"\nmqtt_topic = "t/motion"\n'
        + '[[sensors]]\nid = "s2"\nuser_id = "u1"\n'
        + 'ble_address = "AA:BB:CC:DD:EE:FF"\nmqtt_topic = "t/motion"\n'
        + '[[sensors]]\nid = "s1"\nuser_id = "u1"\n'
    )

    assert problems == [
        (
            'sensors[1].ble_address: "AA:BB:CC:DD:EE:FF" is already used by sensors[0]'
            " (one BLE device cannot be two sensors)"
        ),
        (
            'sensors[1].mqtt_topic: "t/motion" is already used by sensors[0]'
            " (one topic cannot feed two sensors)"
        ),
        (
            'sensors[2].id: "s1" is already used by sensors[0]'
            " (sensor ids name MQTT topics and sessions)"
        ),
    ]


def test_a_bad_bindkey_is_never_echoed() -> None:
    bindkey = "231d39c1d7cc1ab1aee224cd096db93"  # one short
    problems = problems_of(SENSOR + f'ble_address = "aa:bb:cc:dd:ee:ff"\nble_bindkey = "{bindkey}"')

    assert problems == [
        "sensors[0].ble_bindkey: must be exactly 32 hex characters, got 31 characters"
    ]
    assert all(bindkey not in problem for problem in problems)


def test_a_bad_address_is_not_reported_again_as_bindkey_without_address() -> None:
    problems = problems_of(
        SENSOR + 'ble_address = "nope"\nble_bindkey = "231d39c1d7cc1ab1aee224cd096db932"\n'
    )

    assert [p.split(":")[0] for p in problems] == ["sensors[0].ble_address"]


def test_every_problem_is_reported_together() -> None:
    text = textwrap.dedent(
        """
        [hub]
        timezone = "Nowhere/Special"
        [mqtt]
        port = 0
        topic_prefix = "a/#"
        [sessions]
        timeout_minuts = 5
        [spotify]
        redirect_uri = "http://localhost:8888/callback"
        [http]
        host = "0.0.0.0"
        [[sensors]]
        id = "bad id"
        volume = 140
        [[sensors]]
        id = "ok"
        user_id = "u"
        quiet_hours = { start = "22:00", end = "22:00" }
        mqtt_format = "esphome"
        """
    )

    with pytest.raises(ConfigError) as info:
        parse_config(text, source="/etc/spottypotty/hub.toml")

    assert [problem.split(": ")[0] for problem in info.value.problems] == [
        "hub.timezone",
        "mqtt.port",
        "mqtt.topic_prefix",
        "sessions.timeout_minuts",
        "spotify.redirect_uri",
        "http.token_file",
        "sensors[0].id",
        "sensors[0].volume",
        "sensors[0].user_id",
        "sensors[1].quiet_hours.end",
        "sensors[1].mqtt_topic",
    ]
    assert info.value.source == "/etc/spottypotty/hub.toml"
    assert str(info.value).startswith("/etc/spottypotty/hub.toml: hub.timezone: ")


def test_broken_toml_is_one_problem_with_line_and_column() -> None:
    problems = problems_of('[hub]\ndatabase = "x"\ntimezone = \n')

    assert len(problems) == 1
    assert problems[0].startswith("invalid TOML: ")
    assert "line 3" in problems[0]
    assert "column" in problems[0]


@pytest.mark.parametrize(
    "text",
    [
        "[hub]\n[hub]\n",  # a table twice
        "a = " + "[" * 5000 + "]" * 5000,  # deeper than tomllib's recursion
        "a = " + "1" * 5000,  # past Python's integer digit limit
    ],
)
def test_any_unparseable_toml_is_a_config_error(text: str) -> None:
    assert problems_of(text)[0].startswith("invalid TOML: ")


# --- load_config -----------------------------------------------------------------------------


def test_load_config_reads_the_file_and_resolves_paths_next_to_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\ndatabase = "hub.db"\n' + SENSOR, encoding="utf-8")

    config = load_config(path)

    assert config.source == str(path)
    assert config.hub.database == tmp_path / "hub.db"
    assert config.sensors == (SensorConfig(id="s1", user_id="u1"),)


def test_load_config_problems_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("[mqtt]\nport = 0\n", encoding="utf-8")

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.source == str(path)
    assert info.value.problems == ["mqtt.port: must be an integer from 1 to 65535, got 0"]


def test_missing_config_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.problems == [
        f"config file not found: {path} (copy deploy/hub.example.toml there, or pass --config)"
    ]


def test_directory_instead_of_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)

    assert info.value.problems == [f"{tmp_path} is a directory, not a config file"]


def test_unreadable_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hub.toml"

    def refuse(_self: Path) -> bytes:
        # chmod 0 would not stop root, who may well be running the tests.
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.problems == [f"cannot read config file {path}: Permission denied"]


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_bytes(b'[hub]\ntimezone = "\xff"\n')

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.problems == ["not valid UTF-8 (byte 18); TOML files must be UTF-8"]


# --- the shipped example ---------------------------------------------------------------------


def test_example_file_parses() -> None:
    config = load_config(EXAMPLE_FILE)
    example = config.sensors[0]

    # The contract's example, plus the keys added since (issue 15), shown with values.
    assert (
        dataclasses.replace(example, resume=None, moments=(), kind=None, follow=False) == BATHROOM
    )
    assert (example.follow, example.follow_after_seconds) == (True, 20.0)
    assert example.kind == "motion"
    assert example.resume is False
    assert example.moments == (
        Moment(
            dt.time(6, 30),
            dt.time(9, 0),
            context_uri="spotify:show:2mTUnDkuKUkhiueKcVWoP0",
            volume=35,
        ),
        Moment(dt.time(18, 0), dt.time(22, 0), volume=25, shuffle=True, fade_in_seconds=10.0),
    )
    assert dataclasses.replace(config, sensors=(BATHROOM,), rooms=()) == dataclasses.replace(
        parse_config(CONTRACT_EXAMPLE), source=str(EXAMPLE_FILE)
    )
    [bathroom, hall] = config.all_rooms()
    assert (bathroom.id, bathroom.sensor_ids) == (
        "bathroom",
        ("bathroom_main", "bath_radar", "bath_door"),
    )
    assert (bathroom.settings.user_id, bathroom.settings.volume) == ("user-123", 40)
    assert bathroom.settings.follow is True
    assert (bathroom.door_timeout_seconds, bathroom.max_hold_seconds) == (60, 240 * 60)
    assert (hall.id, hall.settings.timeout_minutes, hall.settings.timeout_bounds) == (
        "hall",
        "auto",
        (2.0, 15.0),
    )


def test_moments_parse_and_crossing_midnight_is_one_window() -> None:
    config = parse_config(
        SENSOR
        + """
[[sensors.moments]]
start = "23:00"
end = "06:30"
volume = 10
[[sensors.moments]]
start = "06:30"
end = "09:00"
context_uri = "spotify:show:2mTUnDkuKUkhiueKcVWoP0"
"""
    )

    assert config.sensors[0].moments == (
        Moment(dt.time(23, 0), dt.time(6, 30), volume=10),
        Moment(dt.time(6, 30), dt.time(9, 0), context_uri="spotify:show:2mTUnDkuKUkhiueKcVWoP0"),
    )
    assert config.sensors[0].shuffle is None  # not configured: never sent


def test_overlapping_moments_are_rejected_naming_both_and_where() -> None:
    problems = problems_of(
        SENSOR
        + """
[[sensors.moments]]
start = "22:00"
end = "07:00"
[[sensors.moments]]
start = "12:00"
end = "13:00"
[[sensors.moments]]
start = "06:30"
end = "09:00"
[[sensors.moments]]
start = "13:00"
end = "13:00"
volume = 101
"""
    )

    assert problems == [
        "sensors[0].moments[2]: 06:30-09:00 overlaps moments[0] (22:00-07:00) from 06:30",
        "sensors[0].moments[3].volume: must be an integer from 0 to 100, got 101",
        (
            "sensors[0].moments[3].end: must differ from start "
            "(an empty window is a typo; remove the moment)"
        ),
    ]


def test_example_file_shows_every_key_of_the_schema() -> None:
    document = tomllib.loads(EXAMPLE_FILE.read_text(encoding="utf-8"))
    sections = {
        "hub": HubSection,
        "mqtt": MqttSection,
        "ble": BleSection,
        "sessions": SessionsSection,
        "spotify": SpotifySection,
        "cloud": CloudSection,
        "http": HttpSection,
    }
    top_level = {f.name for f in dataclasses.fields(HubConfig)} - {"source"}

    assert set(document) == top_level
    for name, section in sections.items():
        assert set(document[name]) == {f.name for f in dataclasses.fields(section)}, name
    sensor_keys = {key for sensor in document["sensors"] for key in sensor}
    assert sensor_keys == {f.name for f in dataclasses.fields(SensorConfig)}
    assert set(document["sensors"][0]["quiet_hours"]) == {
        f.name for f in dataclasses.fields(QuietHours)
    }


# --- property: nothing but ConfigError ever escapes --------------------------------------------

SECTIONS: dict[str, type[Any]] = {
    "hub": HubSection,
    "mqtt": MqttSection,
    "ble": BleSection,
    "sessions": SessionsSection,
    "spotify": SpotifySection,
    "cloud": CloudSection,
    "http": HttpSection,
}
# Values that get past the type checks, so the deeper rules run too.
PLAUSIBLE = [
    "",
    "22:00",
    "07:00",
    "s1",
    "u1",
    "esphome",
    "zigbee2mqtt",
    "seed",
    "Europe/London",
    "0.0.0.0",  # noqa: S104 - a value to validate; nothing binds
    "127.0.0.1",
    "http://localhost:1/",
    "http://127.0.0.1:8888/callback",
    "https://[::1]:x/",
    "aa:bb:cc:dd:ee:ff",
    "231d39c1d7cc1ab1aee224cd096db932",
    "spotify:track:abc",
    "a/+",
]

scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.just(10**400),  # tomllib takes integers far beyond 64 bits, even beyond a float's range
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(PLAUSIBLE),
    st.times(),
)


def keys_of(cls: type[Any]) -> st.SearchStrategy[str]:
    """Mostly the schema's own keys, so values reach their rules; sometimes a stray one."""
    return st.sampled_from([f.name for f in dataclasses.fields(cls)]) | st.text(max_size=8)


values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys_of(QuietHours), inner),
    max_leaves=10,
)


def table_of(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(keys_of(cls), values, max_size=len(dataclasses.fields(cls)))


documents = st.fixed_dictionaries(
    {},
    optional={
        **{name: table_of(cls) | values for name, cls in SECTIONS.items()},
        "sensors": st.lists(table_of(SensorConfig) | values, max_size=3) | values,
        "stray": values,
    },
)


def to_toml(value: Any) -> str:
    """A value as TOML, using inline tables so any nesting fits on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # inf, nan and 1e+300 are all valid TOML floats
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{to_toml(k)} = {to_toml(v)}" for k, v in value.items()) + "}"


def parse_or_error(text: str) -> HubConfig | ConfigError:
    try:
        return parse_config(text, base_dir=Path("/etc/spottypotty"))
    except ConfigError as exc:
        return exc


def assert_only_config_error(text: str) -> None:
    """Any other exception escapes parse_or_error and fails the test."""
    result = parse_or_error(text)
    if isinstance(result, ConfigError):
        assert result.problems
        assert all(isinstance(problem, str) and problem for problem in result.problems)


@given(st.text())
def test_arbitrary_text_only_raises_config_error(text: str) -> None:
    assert_only_config_error(text)


@settings(max_examples=300)
@given(documents)
def test_arbitrary_toml_documents_only_raise_config_error(document: dict[str, Any]) -> None:
    text = "\n".join(f"{to_toml(key)} = {to_toml(value)}" for key, value in document.items())
    assert_only_config_error(text)


# --- rooms, kinds and learned timeouts --------------------------------------------------------

ROOM_SENSORS = """
[[sensors]]
id = "pir"
user_id = "u1"
[[sensors]]
id = "door"
user_id = "u1"
kind = "door"
[[sensors]]
id = "window"
user_id = "u1"
kind = "door"
"""


def test_check_config_reports_every_room_problem_at_once() -> None:
    text = ROOM_SENSORS + (
        '[[rooms]]\nid = "bath"\nsensors = ["pir", "door"]\n'
        '[[rooms]]\nid = "hall"\nsensors = ["pir", "nope"]\n'
        '[[rooms]]\nid = "empty"\nsensors = []\n'
        '[[rooms]]\nid = "closet"\nsensors = ["window"]\n'
        '[[rooms]]\nid = "bath"\nsensors = ["window"]\n'
    )
    assert problems_of(text) == [
        "rooms[2].sensors: must name at least one sensor (an empty room never plays)",
        (
            'rooms[1].sensors: "pir" is already in rooms[0] (a sensor is in one room); "nope" '
            "is not a configured sensor"
        ),
        (
            "rooms[3].sensors: only doors: a door alone never starts music (add a motion or "
            "presence sensor)"
        ),
        'rooms[4].id: "bath" is already used by rooms[0]',
        (
            'rooms[4].sensors: "window" is already in rooms[3] (a sensor is in one room); only '
            "doors: a door alone never starts music (add a motion or presence sensor)"
        ),
    ]


def test_a_room_id_may_not_be_a_sensor_in_no_room() -> None:
    text = ROOM_SENSORS + '[[rooms]]\nid = "window"\nsensors = ["pir", "door"]\n'
    assert problems_of(text) == [
        'rooms[0].id: "window" is also a sensor in no room (its own room): rename one'
    ]


def test_rooms_derive_from_sensors_without_rooms_and_take_their_own_keys() -> None:
    alone = parse_config(ROOM_SENSORS)
    assert [(r.id, r.sensor_ids, r.settings) for r in alone.all_rooms()] == [
        (s.id, (s.id,), s) for s in alone.sensors
    ]
    roomed = parse_config(
        ROOM_SENSORS
        + '[[rooms]]\nid = "bath"\nsensors = ["pir", "door"]\nvolume = 30\ntimeout_minutes = 2\n'
    )
    bath, window = roomed.all_rooms()
    assert (bath.id, bath.settings.user_id, bath.settings.volume) == ("bath", "u1", 30)
    assert (bath.timeout_seconds, window.id) == (120.0, "window")
    assert roomed.timeout_seconds("pir") == 120.0  # a sensor's timeout is its room's
    assert roomed.room("door") == bath


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            "timeout_bounds = [2, 10]\n",
            'timeout_bounds: only allowed with timeout_minutes = "auto"',
        ),
        ('timeout_minutes = "auto"\n', 'timeout_bounds: required with timeout_minutes = "auto"'),
        ('timeout_minutes = "auto"\ntimeout_bounds = [10, 2]\n', "min must not exceed max"),
        ('timeout_minutes = "soon"\n', 'or "auto"'),
        ('kind = "radar"\n', 'must be one of "motion", "presence", "door"'),
    ],
)
def test_kind_and_learned_timeout_keys_are_checked(keys: str, problem: str) -> None:
    [said] = problems_of(SENSOR + keys)
    assert problem in said


def test_learned_bounds_are_the_rooms_that_ask() -> None:
    config = parse_config(SENSOR + 'timeout_minutes = "auto"\ntimeout_bounds = [2, 7.5]\n')
    assert config.learned_bounds() == {"s1": (120.0, 450.0)}
    assert config.timeout_seconds("s1") == 300.0  # the default until something is learned


# --- music that follows you (issue 15) --------------------------------------------------------

FOLLOW_SENSORS = """
[[sensors]]
id = "bed_pir"
user_id = "u1"
[[sensors]]
id = "bath_pir"
user_id = "u1"
"""


def test_follow_is_off_by_default_and_read_for_rooms_and_sensors() -> None:
    config = parse_config(
        FOLLOW_SENSORS
        + '[[rooms]]\nid = "bedroom"\nsensors = ["bed_pir"]\nfollow = true\n'
        + '[[rooms]]\nid = "bathroom"\nsensors = ["bath_pir"]\nfollow = true\n'
        + "follow_after_seconds = 7.5\n"
    )
    bedroom, bathroom = config.all_rooms()
    assert (bedroom.settings.follow, bedroom.settings.follow_after_seconds) == (True, 20.0)
    assert (bathroom.settings.follow, bathroom.settings.follow_after_seconds) == (True, 7.5)
    assert parse_config(FOLLOW_SENSORS).sensors[0].follow is False


def test_check_config_refuses_follow_after_seconds_without_follow_and_bad_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "{tmp_path / "hub.db"}"\n'
        + FOLLOW_SENSORS
        + "follow = false\nfollow_after_seconds = 30\n"  # (the bathroom sensor's)
        + '[[rooms]]\nid = "bedroom"\nsensors = ["bed_pir"]\nfollow_after_seconds = 30\n'
        + '[[rooms]]\nid = "hall"\nsensors = []\nfollow = "yes"\nfollow_after_seconds = 0\n',
        encoding="utf-8",
    )

    status = main(["check-config", "--config", str(path)])

    assert status != 0
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  - sensors[1].follow_after_seconds: only allowed with follow = true",
        "  - rooms[0].follow_after_seconds: only allowed with follow = true",
        "  - rooms[1].sensors: must name at least one sensor (an empty room never plays)",
        '  - rooms[1].follow: must be true or false, got "yes"',
        "  - rooms[1].follow_after_seconds: must be a number of seconds, greater than 0, got 0",
    ]
