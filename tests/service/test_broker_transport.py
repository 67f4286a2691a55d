"""The broker transport: a channel closed after its transport answers with a connection
error that kombu and Celery already handle, instead of the AttributeError that made
kombu's own transport end the worker on a Redis restart."""

from __future__ import annotations

import pytest
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Producer

from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.service.broker_transport import BrokerClosed, Transport, install_transport


@pytest.fixture(autouse=True)
def _installed() -> None:
    install_transport()


def test_redis_urls_use_this_transport_and_keep_their_scheme(
    redis_server: RedisServerProcess,
) -> None:
    conn = Connection(redis_server.url)
    try:
        assert conn.transport_cls == "redis"
        assert isinstance(conn.transport, Transport)
        assert conn.as_uri().startswith("redis://")
    finally:
        conn.release()


def test_closing_a_channel_with_unacked_messages_after_its_transport_is_harmless(
    redis_server: RedisServerProcess, prefix: str
) -> None:
    """What Celery's consumer does when Redis goes away under a late-ack task."""
    conn = Connection(redis_server.url, transport_options={"global_keyprefix": prefix})
    queue = Queue(f"{prefix}q")
    try:
        channel = conn.channel()
        producer = Producer(channel)
        producer.publish({"n": 1}, routing_key=queue.name, declare=[queue])
        message = queue(channel).get(no_ack=False)  # delivered, not acknowledged
        assert message is not None
        assert channel.qos._delivered
        channel._pool = None  # the pool went with the lost connection
        channel.connection.client = None  # kombu closed the transport first
        with pytest.raises(BrokerClosed):
            channel._get_pool()
        assert issubclass(BrokerClosed, conn.connection_errors)
        conn.maybe_close_channel(channel)  # raised AttributeError with kombu's own
    finally:
        conn._transport = None  # already taken apart above
        conn._connection = None


def test_acking_through_a_channel_whose_connection_is_gone_only_forgets_the_message(
    redis_server: RedisServerProcess, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A late-ack task that finishes after the worker reconnected: a warning, no error."""
    conn = Connection(redis_server.url, transport_options={"global_keyprefix": prefix})
    queue = Queue(f"{prefix}q")
    try:
        channel = conn.channel()
        Producer(channel).publish({"n": 1}, routing_key=queue.name, declare=[queue])
        message = queue(channel).get(no_ack=False)
        assert message is not None
        channel._pool = None
        channel.connection.client = None
        with caplog.at_level("WARNING", logger="keepa_deals.service.broker_transport"):
            message.ack()
        channel.qos._flush()
        assert not channel.qos._delivered  # nothing left for a restore to push back
        assert "not acknowledged" in caplog.text
    finally:
        conn._transport = None
        conn._connection = None
