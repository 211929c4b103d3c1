"""The properties a moved message gets (``queue_mover.copied``), without a broker."""

from __future__ import annotations

import pika

from gateway.transport.queue_mover import EXPIRATION_HEADER, Destination, copied
from gateway.transport.retry import PUBLISHER_HEADER, ROUTING_KEY_HEADER

ORIGINAL = pika.BasicProperties(
    content_type="application/xml",
    delivery_mode=2,
    message_id="m-1",
    correlation_id="c-1",
    expiration="550000",
    user_id="cafgw-x-332",
    headers={"x-test": 1, "x-delivery-count": 4, "x-death": [{"count": 1}]},
)
HEADERS = {"x-test": 1, "x-delivery-count": 4, "x-death": [{"count": 1}]}


def to(hold: bool) -> Destination:
    return Destination(channel=None, exchange="", routing_key="q", user_id="admin", hold=hold)


def test_a_held_copy_keeps_everything_but_its_expiry_which_waits_in_a_header() -> None:
    held = copied(ORIGINAL, HEADERS, "336.Notification.332", "cafgw-x-332", to(hold=True))

    assert (held.message_id, held.correlation_id, held.content_type) == (
        "m-1",
        "c-1",
        "application/xml",
    )
    assert held.expiration is None
    assert held.user_id == "admin"
    assert held.headers == {
        "x-test": 1,
        "x-death": [{"count": 1}],
        ROUTING_KEY_HEADER: "336.Notification.332",
        PUBLISHER_HEADER: "cafgw-x-332",
        EXPIRATION_HEADER: "550000",
    }


def test_a_copy_moved_back_gets_its_expiry_again() -> None:
    held = copied(ORIGINAL, HEADERS, "k", None, to(hold=True))
    back = copied(held, dict(held.headers), "k", None, to(hold=False))

    assert back.expiration == "550000"
    assert EXPIRATION_HEADER not in back.headers
    assert back.headers[PUBLISHER_HEADER] == ""
