"""The cluster's NATS layout against a real nats-server: listing a bucket's keys finds every
live key every time and leaves no consumer behind (the server allows 1000 per bucket)."""

import asyncio

import pytest

from service.cluster import layout, local
from service.settings import Settings

pytestmark = pytest.mark.cluster

LISTINGS = 1200  # more than the server's 1000 consumers of one stream


async def _list_many(url: str) -> tuple[int, int]:
    """List the streams bucket (one live key, one deleted) LISTINGS times: the listings that
    missed the live key or found the deleted one, and the consumers left on the bucket."""
    c = await layout.connect(Settings(nats_url=url), "test")
    try:
        await c.streams.put("s.0.a", b"{}")
        await c.streams.put("s.0.b", b"{}")
        await c.streams.delete("s.0.b")
        wrong = [i for i in range(LISTINGS) if await layout.keys(c.streams) != ["s.0.a"]]
        info = await c.js.stream_info(f"KV_{layout.STREAMS}")
        return len(wrong), int(info.state.consumer_count)
    finally:
        await c.close()


def test_key_listings_find_every_key_and_leave_no_consumer(nats_server: local.NatsServer) -> None:
    assert asyncio.run(_list_many(nats_server.url)) == (0, 0)  # was (4 of 600, and an error)
