# config.json on the device -> a validated Config. Every problem is reported at once;
# unknown keys are errors (a typo must not silently fall back to a default).
import json

FIRMWARE_VERSION = "1.0.0"
PATH = "config.json"

MODES = ("mqtt", "ble")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_HEX = "0123456789abcdefABCDEF"

# section -> {key: (default, check)}; REQUIRED marks keys without a default
REQUIRED = object()


class ConfigError(ValueError):
    def __init__(self, problems):
        super().__init__("config.json: " + "; ".join(problems))
        self.problems = problems


def _sensor_id(v):
    return isinstance(v, str) and 1 <= len(v) <= 64 and all(c in _ID_CHARS for c in v)  # noqa: PLR2004


def _text(v):
    return isinstance(v, str)


def _nonempty(v):
    return isinstance(v, str) and len(v) > 0


def _int(low, high):
    def check(v):
        return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

    return check


def _bool(v):
    return isinstance(v, bool)


def _pin_or_none(v):
    return v is None or _int(0, 48)(v)


def _mode(v):
    return v in MODES


def _bindkey(v):
    return v == "" or (isinstance(v, str) and len(v) == 32 and all(c in _HEX for c in v))  # noqa: PLR2004


def _mac_or_empty(v):
    if v == "":
        return True
    if not isinstance(v, str):
        return False
    parts = v.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in _HEX for c in p) for p in parts)  # noqa: PLR2004


def _topic_prefix(v):
    if not _nonempty(v):
        return False
    return not any(c in v for c in "#+") and not v.startswith("/") and not v.endswith("/")


SCHEMA = {
    "": {
        "sensorId": (REQUIRED, _sensor_id, "1-64 characters of A-Z a-z 0-9 _ -"),
        "mode": (None, _mode, '"mqtt" or "ble"'),  # None: "ble" if only a ble section is given
        "location": ("", _text, "a string"),
    },
    "pir": {
        "pin": (13, _int(0, 39), "a GPIO number 0..39 (RTC GPIO for BLE wake-up)"),
        "pull": ("down", lambda v: v in ("down", "up", "none"), '"down", "up" or "none"'),
        "debounceMs": (2000, _int(0, 600000), "milliseconds 0..600000"),
        "repeatMs": (60000, _int(0, 3600000), "milliseconds 0..3600000 (0 = off)"),
        "warmupMs": (30000, _int(0, 120000), "milliseconds 0..120000"),
    },
    "battery": {
        "adcPin": (None, _pin_or_none, "null or an ADC GPIO"),
        "emptyMv": (3300, _int(0, 10000), "millivolts"),
        "fullMv": (4200, _int(0, 10000), "millivolts"),
        "divider": (2, _int(1, 10), "the voltage divider ratio 1..10"),
    },
    "wifi": {
        "ssid": ("", _text, "a string"),
        "password": ("", _text, "a string"),
        "connectTimeoutMs": (15000, _int(1000, 120000), "milliseconds 1000..120000"),
    },
    "mqtt": {
        "host": ("", _text, "a host name or address"),
        "port": (1883, _int(1, 65535), "a port 1..65535"),
        "username": ("", _text, "a string"),
        "password": ("", _text, "a string"),
        "topicPrefix": ("sensors", _topic_prefix, "a prefix without + # or leading/trailing /"),
        "keepalive": (30, _int(5, 3600), "seconds 5..3600"),
        "qos": (1, lambda v: v == 1, "1 (motion is sent at QoS 1)"),
        "queueSize": (20, _int(1, 60), "1..60 events (the hub remembers 64 seqs)"),
        "ntpHost": ("pool.ntp.org", _text, "a host name ('' = no NTP)"),
    },
    "ble": {
        "bindkey": ("", _bindkey, "'' (plain) or 32 hex digits"),
        "name": ("SPS", _text, "a short advertised name"),
        "burstMs": (1000, _int(100, 10000), "milliseconds 100..10000"),
        "intervalMs": (100, _int(20, 10240), "milliseconds 20..10240"),
        "recheckMs": (30000, _int(1000, 3600000), "milliseconds 1000..3600000"),
        "reportClear": (False, _bool, "true or false"),
    },
}


class Config:
    """Sections as dict attributes (`cfg.mqtt["host"]`); `sensor_id`, `mode`, `location`."""

    def __init__(self, values):
        self.sensor_id = values["sensorId"]
        self.mode = values["mode"]
        self.location = values["location"]
        self.pir = values["pir"]
        self.battery = values["battery"]
        self.wifi = values["wifi"]
        self.mqtt = values["mqtt"]
        self.ble = values["ble"]

    def summary(self):
        """For the serial console: never the passwords or the bindkey."""
        return "sensor %s, mode %s, pir GPIO%d, broker %s:%d" % (
            self.sensor_id,
            self.mode,
            self.pir["pin"],
            self.mqtt["host"] or "-",
            self.mqtt["port"],
        )


def validate(raw):
    """A dict (parsed config.json) -> Config; raises ConfigError listing every problem."""
    problems = []
    if not isinstance(raw, dict):
        raise ConfigError(["must be a JSON object"])
    values = {}
    for section, fields in SCHEMA.items():
        if section:
            given = raw.get(section, {})
            if not isinstance(given, dict):
                problems.append(section + ": must be an object")
                given = {}
            target = {}
            values[section] = target
            where = section + "."
        else:
            given, target, where = raw, values, ""
        for key, (default, check, expected) in fields.items():
            if key not in given:
                if default is REQUIRED:
                    problems.append(where + key + ": missing (" + expected + ")")
                else:
                    target[key] = default
                continue
            value = given[key]
            if not check(value):
                problems.append(where + key + ": must be " + expected + ", got " + repr(value)[:40])
            else:
                target[key] = value
        known = fields if section else tuple(fields) + tuple(s for s in SCHEMA if s)
        problems.extend(where + key + ": unknown key" for key in given if key not in known)
    if not problems:
        if values["mode"] is None:  # `spottypotty sensors add` prints no mode: infer it
            values["mode"] = "ble" if "ble" in raw and "mqtt" not in raw else "mqtt"
        _check_mode(values, problems)
    if problems:
        raise ConfigError(problems)
    return Config(values)


def _check_mode(values, problems):
    if values["mode"] == "mqtt":
        if not values["wifi"]["ssid"]:
            problems.append("wifi.ssid: needed in mqtt mode")
        if not values["mqtt"]["host"]:
            problems.append("mqtt.host: needed in mqtt mode")
        if values["mqtt"]["password"] and not values["mqtt"]["username"]:
            problems.append("mqtt.username: needed with mqtt.password")
    battery = values["battery"]
    if battery["adcPin"] is not None and battery["fullMv"] <= battery["emptyMv"]:
        problems.append("battery.full_mv: must be above battery.empty_mv")


def loads(text):
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(["not valid JSON (" + str(exc) + ")"]) from None
    return validate(raw)


def load(path=PATH):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError([path + " not found: copy config.example.json and edit it"]) from None
    return loads(text)
