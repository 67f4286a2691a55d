"""kombu's Redis transport, made to survive a Redis restart under a running task.

With late acks a running (or reserved) task's message is unacknowledged. When Redis
goes away, Celery's consumer closes its broker connection; kombu (5.7) can close the
transport before the channel, and the channel's close then tries to push the unacked
messages back through a connection pool it has to build from a transport whose
`client` is already None. That raises AttributeError, which none of Celery's
`ignore_errors` guards catch: "Unrecoverable error", and the worker process exits.
Upstream this is kombu's Redis `Channel.close` building its pool from the transport's
connection info after the transport dropped it (`_connparams` reading attributes of
None), the AttributeError reported in celery/kombu issue #582 ("Error on restarting
Gossip"); kombu 5.7.0 still has it. This module subclasses kombu internals (Channel,
QoS, Transport), so kombu is pinned to that version in requirements.txt: re-check it
before upgrading.

Here a channel whose transport has lost its client answers with a Redis
ConnectionError instead, an error kombu and Celery already treat as a lost broker:
the consumer keeps retrying its connection and the worker lives. Nothing is lost by
not restoring at that moment: the messages stay in kombu's unacked hash (if Redis kept
it) and come back after the visibility timeout, as after a SIGKILL; and beat sends the
next run anyway.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis

TRANSPORT_PATH = "keepa_deals.service.broker_transport:Transport"
#: The URL schemes kombu maps to its Redis transport (unix sockets are redis+socket).
SCHEMES = ("redis", "rediss")


logger = logging.getLogger(__name__)


class BrokerClosed(redis.exceptions.ConnectionError):
    """The channel outlived its transport's connection."""


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        # A task that ends after its broker connection was replaced cannot acknowledge
        # through the old channel. Celery would log that as CRITICAL with a traceback;
        # it is expected after a Redis restart and costs nothing (see the module doc).
        if self.channel.connection.client is None:
            logger.warning(
                "broker: task message %s came from a connection since lost; it is not "
                "acknowledged and Redis restores it after the visibility timeout, if it "
                "still has it (the task lock makes a second run harmless)",
                delivery_tag,
            )
            kombu_virtual_ack(self, delivery_tag)
            return
        super().ack(delivery_tag)  # type: ignore[no-untyped-call]


def kombu_virtual_ack(qos: QoS, delivery_tag: str) -> None:
    """Forget the message locally only: the in-memory part of kombu's ack."""
    super(kombu_redis.QoS, qos).ack(delivery_tag)  # type: ignore[no-untyped-call]


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _get_pool(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise BrokerClosed(
                "the broker connection is already closed; unacknowledged messages "
                "stay in Redis until the visibility timeout restores them"
            )
        return super()._get_pool(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel


def install_transport() -> None:
    """Make `redis://` and `rediss://` broker URLs use this transport, in this process.

    Registered under kombu's own aliases rather than through `broker_transport`, so the
    URL keeps its scheme: kombu's TLS handling keys on `rediss`, and the worker's
    "Connected to redis://..." lines stay as operators know them.
    """
    for scheme in SCHEMES:
        kombu.transport.TRANSPORT_ALIASES[scheme] = TRANSPORT_PATH
        kombu.transport._transport_cache.pop(scheme, None)  # resolved before us, if at all
