"""Receiving: the one pipeline every consumed queue goes through (``pipeline``),
and the checks every message passes before any feature sees it (``checks``)."""

from gateway.services.receiving.pipeline import ReceiptsInFlight, handle_batch

__all__ = ["ReceiptsInFlight", "handle_batch"]
