"""Integration fixtures: a real mosquitto broker per test, unique topics, no leftover tasks."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.broker import Broker, BrokerError
from tests.hub_process import NotifySocket


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker per test (mosquitto starts in a few milliseconds): no retained state
    (the hub status topic is fixed) or persistent sessions leak between tests."""
    try:
        instance = Broker(tmp_path / "mosquitto")
        instance.start()
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield instance
    instance.stop()


BrokerFactory = Callable[[str], Broker]


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Start extra brokers with more config lines (e.g. authentication); all stopped after."""
    started: list[Broker] = []

    def start(extra_config: str) -> Broker:
        instance = Broker(tmp_path / f"mosquitto-{len(started)}", extra_config)
        started.append(instance)
        instance.start()
        return instance

    yield start
    for instance in started:
        instance.stop()


_prefix_numbers = itertools.count()


@pytest.fixture
def unique_prefix() -> str:
    """A topic prefix no other test uses (aiomqtt's conftest `unique_topic` idea)."""
    return f"itest-{os.getpid()}-{next(_prefix_numbers)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
async def verify_no_lingering_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (aioesphomeapi's fixture of that name)."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    for _ in range(5):  # let tasks that were just cancelled finish
        await asyncio.sleep(0)
    lingering = [
        task for task in asyncio.all_tasks() - before if task is not current and not task.done()
    ]
    for task in lingering:
        task.cancel()
    assert not lingering, f"the test left tasks running: {lingering}"


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    """$NOTIFY_SOCKET for a daemon subprocess (tests.hub_process)."""
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()
