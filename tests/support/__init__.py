"""Test support: one settable clock, one way to build a gateway on the in-memory
transport, and ``settle`` to run gateways to quiet through their own worker
steps (``Worker.run_round``), never a re-implementation of the routing."""
