"""SIGTERM always ends the hub: a backstop timer forces the exit if the ordered stop hangs."""

from __future__ import annotations

import threading

import pytest

from hub import daemon as daemon_module
from hub.config import HubConfig
from hub.daemon import Daemon
from hub.playback.dry_run import DryRunPlayer
from hub.systemd import Notifier


async def test_stop_arms_the_backstop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fired = threading.Event()
    calls: list[float] = []

    def exit_now(after: float) -> None:
        calls.append(after)
        fired.set()

    monkeypatch.setattr(daemon_module, "_exit_now", exit_now)
    hub = Daemon(HubConfig(), notifier=Notifier(None), player=DryRunPlayer(), hard_stop=0.01)
    hub.stop()
    hub.stop()  # a second signal arms nothing more
    assert fired.wait(5)
    assert calls == [0.01]


async def test_without_a_backstop_stop_only_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "_exit_now", pytest.fail)
    hub = Daemon(HubConfig(), notifier=Notifier(None), player=DryRunPlayer())
    hub.stop()
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
