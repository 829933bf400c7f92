"""The MQTT link's intake: aiomqtt's incoming queue, taking messages at once when it can."""

from __future__ import annotations

import aiomqtt

from hub.ingest.mqtt import _Intake


class Consumer:
    """Takes messages at once while `open`; remembers what it took."""

    def __init__(self) -> None:
        self.open = True
        self.taken: list[str] = []

    def __call__(self, message: aiomqtt.Message) -> bool:
        if self.open:
            self.taken.append(name(message))
        return self.open


def message(topic: str) -> aiomqtt.Message:
    return aiomqtt.Message(topic, b"{}", qos=1, retain=False, mid=1, properties=None)


def name(message: aiomqtt.Message) -> str:
    return message.topic.value


def next_name(intake: _Intake) -> str:
    return name(intake.get_nowait())


async def test_messages_are_taken_at_once_while_nothing_waits() -> None:
    consumer = Consumer()
    intake = _Intake(consumer)
    intake.put_nowait(message("a"))
    intake.put_nowait(message("b"))
    assert consumer.taken == ["a", "b"]
    assert intake.empty()


async def test_a_refused_message_waits_and_so_does_everything_after_it() -> None:
    consumer = Consumer()
    intake = _Intake(consumer)
    consumer.open = False
    intake.put_nowait(message("a"))  # refused: queued
    consumer.open = True
    intake.put_nowait(message("b"))  # "a" is ahead of it
    assert consumer.taken == []
    assert next_name(intake) == "a"
    intake.put_nowait(message("c"))  # "b" still queued
    assert next_name(intake) == "b"
    assert next_name(intake) == "c"
    assert consumer.taken == []


async def test_the_message_the_reader_holds_is_not_overtaken() -> None:
    consumer = Consumer()
    intake = _Intake(consumer)
    consumer.open = False
    intake.put_nowait(message("a"))
    consumer.open = True
    assert next_name(intake) == "a"  # the reader has it, not yet handed on
    intake.put_nowait(message("b"))  # the queue is empty, but "a" is not delivered yet
    assert consumer.taken == []
    intake.out = None  # the reader handed "a" on (it decoded to nothing)
    assert next_name(intake) == "b"
    intake.out = None
    intake.put_nowait(message("c"))
    assert consumer.taken == ["c"]


async def test_a_closed_intake_takes_nothing_more() -> None:
    consumer = Consumer()
    intake = _Intake(consumer)
    intake.close()  # the link is stopping
    intake.put_nowait(message("a"))
    assert consumer.taken == []
    assert next_name(intake) == "a"
