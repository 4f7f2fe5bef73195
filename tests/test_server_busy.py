"""GhostServer.while_busy: the status says busy only for requests that run past BUSY_AFTER_S,
once however many overlap, and stops saying it when the last one ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ghostcomplete.server import protocol
from ghostcomplete.server.state import BUSY_AFTER_S, GhostServer

pytestmark = pytest.mark.timeout(10)


class Recorded:
    """The status notifications the server sends, with the loop's time of each."""

    def __init__(self, server: GhostServer) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.changed = asyncio.Event()
        loop = asyncio.get_running_loop()

        def notify(method: str, params: Any = None) -> None:
            assert method == protocol.DID_CHANGE_STATUS
            self.sent.append((loop.time(), params))
            self.changed.set()

        server.protocol.notify = notify

    async def next(self) -> dict[str, Any]:
        await asyncio.wait_for(self.changed.wait(), timeout=5)
        self.changed.clear()
        return self.sent[-1][1]


async def finished(value: str, after: asyncio.Event | None = None) -> str:
    if after is not None:
        await after.wait()
    return value


async def test_a_quick_request_sends_no_status() -> None:
    server = GhostServer()
    recorded = Recorded(server)
    assert await server.while_busy(finished("quick")) == "quick"
    # An absence: only waiting out the threshold shows that no late busy status follows.
    await asyncio.sleep(BUSY_AFTER_S + 0.05)
    assert recorded.sent == []


async def test_a_slow_request_says_busy_past_the_threshold_then_not() -> None:
    server = GhostServer()
    server.status = (protocol.StatusKind.WARNING, "model is slow")
    recorded = Recorded(server)
    release = asyncio.Event()
    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(server.while_busy(finished("slow", release)))
    busy = await recorded.next()
    assert busy == {"kind": "Warning", "message": "model is slow", "busy": True}
    assert recorded.sent[-1][0] - started >= BUSY_AFTER_S
    release.set()
    assert await task == "slow"
    assert await recorded.next() == {"kind": "Warning", "message": "model is slow", "busy": False}
    assert len(recorded.sent) == 2


async def test_overlapping_requests_say_busy_once_until_the_last_ends() -> None:
    server = GhostServer()
    recorded = Recorded(server)
    first_done, second_done = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(server.while_busy(finished("first", first_done)))
    second = asyncio.create_task(server.while_busy(finished("second", second_done)))
    assert (await recorded.next())["busy"] is True
    first_done.set()
    assert await first == "first"
    assert [params["busy"] for _, params in recorded.sent] == [True]
    second_done.set()
    assert await second == "second"
    assert (await recorded.next())["busy"] is False
    assert len(recorded.sent) == 2


async def test_a_failed_request_still_ends_busy() -> None:
    server = GhostServer()
    recorded = Recorded(server)
    release = asyncio.Event()

    async def fails() -> None:
        await release.wait()
        raise RuntimeError("backend broke")

    task = asyncio.create_task(server.while_busy(fails()))
    assert (await recorded.next())["busy"] is True
    release.set()
    with pytest.raises(RuntimeError):
        await task
    assert (await recorded.next())["busy"] is False
