"""Giving existing queues the shape the gateway declares, without losing a message.

RabbitMQ cannot change a queue's type or arguments in place. For each
queue whose shape differs (``queue_survey``), with every gateway stopped:

1. declare ``<queue>.migrating``, a quorum queue with no TTL and no
   dead-lettering, and give it the queue's bindings (what still arrives
   lands there), then take them from the queue;
2. move every message into it (``queue_mover``: acknowledged only once
   the broker confirmed the copy), check the queue is empty and unused,
   delete it (no ``if-empty`` delete: quorum queues refuse it);
3. declare the queue in the wanted shape with its bindings, take the
   holding queue's bindings away, move the messages back through the relay
   exchange as the gateway's relay account (so the gateway believes the
   routing key and publisher they carry), check the holding queue is empty
   and delete it.

Every step is safe to repeat: a run that stopped part way is finished by
the next, which finds the holding queue (with messages, or the queue gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.errors import QueueMigrationError
from gateway.transport.provenance import Provenance
from gateway.transport.queue_mover import Destination, confirming, move_all
from gateway.transport.queue_survey import QueueSurvey, depth, holding_name
from gateway.transport.reconnect import PIKA_ERRORS, describe
from gateway.transport.topology import BindingSpec, Plan, QueueSpec

GROUP_SIZE = "x-quorum-initial-group-size"


@dataclass(frozen=True)
class Moved:
    """What ``--apply`` did with one queue."""

    queue: str
    held: int  # messages moved into the holding queue by this run
    returned: int  # messages moved back from it


@dataclass(frozen=True)
class Accounts:
    """The two connections a migration uses and who they are."""

    admin: Any  # declares, binds, deletes and reads (broker.url's account)
    admin_user: str | None
    relay: Any  # publishes the copies back (the gateway's relay account)
    relay_user: str | None


def busy(surveys: Sequence[QueueSurvey], vhost: str) -> None:
    """Raise QueueMigrationError if anything consumes a queue that is to be moved."""
    for found in surveys:
        if found.needs_move and found.consumers:
            raise QueueMigrationError(
                f"queue {found.name!r} on vhost {vhost!r} has {found.consumers} consumer(s): "
                "stop every gateway of the vhost (and anything else reading the queue) "
                "before 'cafgw broker migrate-queues --apply'"
            )


def migrate(
    accounts: Accounts,
    plan: Plan,
    surveys: Sequence[QueueSurvey],
    provenance: Provenance,
    relay_exchange: str,
    vhost: str,
) -> list[Moved]:
    """Move each surveyed queue that needs it into its wanted shape (see the module)."""
    busy(surveys, vhost)
    todo = [s for s in surveys if s.needs_move]
    if not todo:
        return []
    if accounts.admin_user is None:
        raise QueueMigrationError(
            f"vhost {vhost!r}: broker.url logs in without a user name, so moved messages "
            "could not say who moved them; run the command with a password login"
        )
    # The holding queue's copies are the admin account's: believe the origin they carry.
    held_provenance = replace(provenance, relays=provenance.relays | {accounts.admin_user})
    try:
        # The bindings given back below need every exchange (an old deployment may lack one).
        channel = accounts.admin.channel()
        for exchange in plan.exchanges:
            channel.exchange_declare(exchange.name, exchange_type=exchange.kind, durable=True)
        channel.close()
    except PIKA_ERRORS as exc:
        raise QueueMigrationError(
            f"declaring the exchanges on vhost {vhost!r}: {describe(exc)}"
        ) from exc
    done: list[Moved] = []
    for found in todo:
        try:
            channel = accounts.admin.channel()
            bindings = [b for b in plan.bindings if b.queue == found.name]
            held = 0
            if found.wrong is not None:
                held = _hold(accounts, channel, found, bindings, provenance, vhost)
            returned = _restore(
                accounts, channel, found.spec, bindings, held_provenance, relay_exchange, vhost
            )
            channel.close()
        except PIKA_ERRORS as exc:
            raise QueueMigrationError(
                f"moving queue {found.name!r} on vhost {vhost!r}: {describe(exc)}; no message "
                f"is lost (those not yet moved back are in {holding_name(found.name)!r}): "
                "run 'cafgw broker migrate-queues --apply' again to finish"
            ) from exc
        done.append(Moved(found.name, held, returned))
    return done


def _hold(
    accounts: Accounts,
    channel: Any,
    found: QueueSurvey,
    bindings: Sequence[BindingSpec],
    provenance: Provenance,
    vhost: str,
) -> int:
    """Steps 1 and 2: the old queue's messages into the holding queue, the old queue gone."""
    name, held = found.name, holding_name(found.name)
    if found.holding is None:
        channel.queue_declare(held, durable=True, arguments=_holding_arguments(found.spec))
    for b in bindings:
        channel.queue_bind(held, b.exchange, routing_key=b.key)
    for b in bindings:
        channel.queue_unbind(name, b.exchange, routing_key=b.key)
    to = Destination(confirming(accounts.admin), "", held, accounts.admin_user, hold=True)
    moved = move_all(channel, name, to, provenance)
    to.channel.close()
    _unused(accounts.admin, name, vhost)
    channel.queue_delete(name)
    return moved


def _restore(
    accounts: Accounts,
    channel: Any,
    spec: QueueSpec,
    bindings: Sequence[BindingSpec],
    provenance: Provenance,
    relay_exchange: str,
    vhost: str,
) -> int:
    """Step 3: the queue in its wanted shape, the held messages back in it."""
    held = holding_name(spec.name)
    channel.queue_declare(spec.name, durable=True, arguments=dict(spec.arguments) or None)
    for b in bindings:
        channel.queue_bind(spec.name, b.exchange, routing_key=b.key)
    if depth(accounts.admin, held) is None:
        return 0
    for b in bindings:
        channel.queue_unbind(held, b.exchange, routing_key=b.key)
    # Back through the relay exchange (bound to every lane queue by its own name),
    # as the relay account: the gateway then believes the origin headers.
    to = Destination(
        confirming(accounts.relay), relay_exchange, spec.name, accounts.relay_user, hold=False
    )
    moved = move_all(channel, held, to, provenance)
    to.channel.close()
    _unused(accounts.admin, held, vhost)
    channel.queue_delete(held)
    return moved


def _unused(conn: Any, name: str, vhost: str) -> None:
    """Raise unless queue ``name``, just emptied, is still empty and unconsumed."""
    left = depth(conn, name)
    if left is not None and (left.ready or left.consumers):
        raise QueueMigrationError(
            f"queue {name!r} on vhost {vhost!r} still has {left.ready} message(s) and "
            f"{left.consumers} consumer(s) after its messages were moved, so it is not "
            "deleted: something still uses it; stop it and run the command again"
        )


def _holding_arguments(spec: QueueSpec) -> dict[str, object]:
    # No TTL and no dead-lettering: a delay queue's messages wait here unchanged.
    found: dict[str, object] = {"x-queue-type": "quorum"}
    if GROUP_SIZE in spec.arguments:
        found[GROUP_SIZE] = spec.arguments[GROUP_SIZE]
    return found
