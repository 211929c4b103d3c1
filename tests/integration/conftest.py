"""Fixtures for integration tests that must take a broker down: a private RabbitMQ node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.broker_region import Region, made_region
from tests.integration.private_broker import PrivateBroker


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A RabbitMQ node of this module's own, to stop and restart at will.

    Module-scoped: booting Erlang takes seconds. Stopped and its data deleted
    afterwards, also when the module's tests fail.
    """
    broker = PrivateBroker(tmp_path_factory.mktemp("rabbitmq"))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def private_vhost(private_broker: PrivateBroker) -> str:
    """A vhost of this test's own on the private node; yields its amqp URL.

    Not deleted one by one: the whole node goes at the end of the module.
    """
    return private_broker.add_vhost()


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """A vhost of the module's own, its topology declared by the administrator, with
    accounts for Dudley (332), Wolverhampton (336) and the relays (broker_region.py).

    Module-scoped: every rabbitmqctl call takes seconds.
    """
    with made_region(tmp_path_factory.mktemp("accounts")) as made:
        yield made
