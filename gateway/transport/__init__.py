"""Moving messages through RabbitMQ: one module per concept.

``base`` the contract; ``rabbit`` the real transport, built from
``topology`` (names, declarations), ``publisher`` (pipelined confirms),
``consumer`` (batches, settlement), ``parking`` (peek, replay), ``retry``
(message-level retry policy and headers), ``reconnect`` (connection-level
retry, pika exceptions mapped) and ``wire`` (pika frames to plain data);
``memory`` the in-process transport for unit tests.
"""
