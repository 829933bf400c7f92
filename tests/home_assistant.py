"""A real Home Assistant, headless on a free loopback port, for the integration tests.

Installed by `scripts/install-home-assistant.sh` into `.venv-ha` (its own venv: it pins
other versions of the libraries the hub uses). `HomeAssistant(directory, broker_port)`
writes a minimal configuration, starts `hass --skip-pip` (it installs nothing, so it runs
offline), onboards it through its HTTP API (the first user's auth code → a token) and adds
MQTT through its config flow, as a person would in the UI. Then: REST (`states`, `call`),
the websocket API (`registry`: devices and entities), and the log (`problems`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from tests.broker import HOST, accepts, free_port

ROOT = Path(__file__).resolve().parents[1]
HASS = ROOT / ".venv-ha" / "bin" / "hass"
START_LIMIT = 120.0  # seconds for HA to answer HTTP (about 5 s on a laptop, more under load)
STOP_LIMIT = 30.0
USERNAME = "test"
PASSWORD = "test-password-for-a-throwaway-ha"  # noqa: S105 - a test instance's

CONFIGURATION = """\
homeassistant:
  name: SpottyPottySense test
  latitude: 51.5
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: GB
  currency: GBP
http:
  server_host: {host}
  server_port: {port}
logger:
  default: warning
"""


class HomeAssistantError(RuntimeError):
    """Home Assistant would not start, onboard or answer: the message says what it did."""


class HomeAssistant:
    def __init__(self, directory: Path, broker_port: int) -> None:
        self.directory = directory
        self.broker_port = broker_port
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.client_id = self.base + "/"
        self.token = ""
        self._process: subprocess.Popen[bytes] | None = None
        self.log = directory / "home-assistant.log"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start; the first time also onboard and add MQTT (what HA keeps in .storage)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "configuration.yaml").write_text(
            CONFIGURATION.format(host=HOST, port=self.port), encoding="utf-8"
        )
        output = (self.directory / "hass.out").open("ab")
        self._process = subprocess.Popen(
            [str(HASS), "-c", str(self.directory), "--skip-pip"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        output.close()
        deadline = time.monotonic() + START_LIMIT
        while not accepts(self.port) or self._status("/api/onboarding") is None:
            if self._process.poll() is not None:
                raise HomeAssistantError(f"hass exited {self._process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"no answer within {START_LIMIT:.0f} s: {self.tail()}")
            time.sleep(0.2)
        if not self.token:
            self._onboard()
            self._add_mqtt()
        else:
            self._login()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_LIMIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- onboarding ----------------------------------------------------------------------------

    def _onboard(self) -> None:
        """The first user, as the onboarding page makes it; the rest of onboarding is not
        needed for the API (its core-config step needs integrations not installed)."""
        user = self._request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Test",
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
            auth=False,
        )
        self._token(user["auth_code"])

    def _login(self) -> None:
        """After a restart: log in through the login flow (the old token is still valid, but
        this is what a person does, and it checks auth works)."""
        flow = self._request(
            "POST",
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": self.client_id,
            },
            auth=False,
        )
        done = self._request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self.client_id, "username": USERNAME, "password": PASSWORD},
            auth=False,
        )
        self._token(done["result"])

    def _token(self, code: str) -> None:
        form = urllib.parse.urlencode(
            {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback http
            self.base + "/auth/token",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            self.token = json.loads(response.read())["access_token"]

    def _add_mqtt(self) -> None:
        """MQTT through its config flow: the broker's host and port, as in the UI."""
        flow = self._request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        done = self._request(
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": HOST, "port": self.broker_port},
        )
        if done.get("type") != "create_entry" or done["result"]["state"] != "loaded":
            raise HomeAssistantError(f"MQTT config flow ended with {done}")

    # --- REST ---------------------------------------------------------------------------------

    def _status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=2) as response:  # noqa: S310
                return int(response.status)
        except (OSError, urllib.error.URLError):
            return None

    def _request(self, method: str, path: str, body: object = None, *, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback http
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise HomeAssistantError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from exc
        return json.loads(text) if text else None

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """An entity's state object (`state`, `attributes`), None when HA has no such entity."""
        try:
            found: dict[str, Any] = self._request("GET", f"/api/states/{entity_id}")
        except HomeAssistantError as exc:
            if ": 404 " in str(exc):
                return None
            raise
        return found

    def call(self, domain: str, service: str, **data: Any) -> None:
        self._request("POST", f"/api/services/{domain}/{service}", data)

    # --- websocket: the registries ----------------------------------------------------------

    async def registry(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(devices, entities) from HA's device and entity registries."""
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.base + "/api/websocket") as ws,
        ):
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            if (await ws.receive_json())["type"] != "auth_ok":
                raise HomeAssistantError("websocket auth refused")
            answers = []
            for number, command in enumerate(
                ["config/device_registry/list", "config/entity_registry/list"], start=1
            ):
                await ws.send_json({"id": number, "type": command})
                answer = await ws.receive_json()
                if not answer.get("success"):
                    raise HomeAssistantError(f"{command}: {answer}")
                answers.append(answer["result"])
        return answers[0], answers[1]

    # --- the log -----------------------------------------------------------------------------

    def problems(self, *needles: str) -> list[str]:
        """ERROR and WARNING records of HA's log (a record: its first line and what follows
        up to the next timestamp) that mention any of `needles`."""
        if not self.log.exists():
            return []
        records: list[str] = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line[:4].isdigit() and line[4:5] == "-":
                records.append(line)
            elif records:
                records[-1] += "\n" + line
        return [
            record
            for record in records
            if (" ERROR " in record.split("\n", 1)[0] or " WARNING " in record.split("\n", 1)[0])
            and any(needle in record for needle in needles)
        ]
