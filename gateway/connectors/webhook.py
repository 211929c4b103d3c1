"""The webhook connector: an HMAC-signed POST of each message to the local system.

Request: ``POST <url>`` with the canonical XML as the body and

- ``X-Cafgw-Signature: sha256=<hex HMAC-SHA256 of the body>`` with the
  authority's shared secret (read from ``hmac_secret_file``, never the repo);
- ``Idempotency-Key: <message id>``: a POST that succeeded just before a crash
  is sent again with the same key and body, so the local system can drop it;
- ``X-Cafgw-Message-Id``, ``X-Cafgw-Sender``, ``X-Cafgw-Message-Type``,
  ``X-Cafgw-Attempt`` (1 on the first try).

Answer: 2xx means the local system took the message. 408, 429, 5xx and
connection errors mean "not now" (retried with backoff); any other status is
a permanent refusal (dead-lettered with the status and the start of the
answer). Redirects are not followed: configure the final URL.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

from gateway.connectors.base import Handover, LocalMessage, Outcome

SIGNATURE_HEADER = "X-Cafgw-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# 401/403 mean the shared secret or the endpoint's credentials are wrong: a
# configuration fault an administrator fixes, after which every waiting
# message should go, so they are retried (and shown) rather than refused.
TRANSIENT_STATUSES = frozenset({401, 403, 408, 429})
MAX_ANSWER_CHARS = 200


def signature(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a local system does with the header (constant-time comparison)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


def outcome_of(status_code: int) -> Outcome:
    """How an HTTP status from the local system is taken."""
    if 200 <= status_code < 300:
        return Outcome.TAKEN
    if status_code in TRANSIENT_STATUSES or status_code >= 500:
        return Outcome.RETRY
    return Outcome.REFUSED


class WebhookConnector:
    kind = "webhook"
    pushes = True

    def __init__(
        self,
        authority: str,
        url: str,
        secret: bytes,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.authority = authority
        self.url = url
        self._secret = secret
        self._own_client = client is None
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False
        )

    def deliver(self, message: LocalMessage) -> Handover:
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            SIGNATURE_HEADER: signature(self._secret, message.body),
            IDEMPOTENCY_HEADER: message.message_id,
            "X-Cafgw-Message-Id": message.message_id,
            "X-Cafgw-Sender": message.sender,
            "X-Cafgw-Message-Type": message.message_type,
            "X-Cafgw-Attempt": str(message.attempts + 1),
        }
        try:
            answer = self._client.post(self.url, content=message.body, headers=headers)
        except httpx.HTTPError as exc:
            # Connection refused, timeout, reset: the local system is not there now.
            return Handover(Outcome.RETRY, f"webhook {self.url}: {type(exc).__name__}: {exc}"[:500])
        outcome = outcome_of(answer.status_code)
        if outcome is Outcome.TAKEN:
            return Handover(Outcome.TAKEN, f"webhook {self.url} answered {answer.status_code}")
        # The start of the answer helps the operator; a local system's error
        # text is not expected to carry personal data, and it is cut short.
        text = answer.text[:MAX_ANSWER_CHARS].replace("\n", " ")
        return Handover(outcome, f"webhook {self.url} answered {answer.status_code}: {text}")

    def publish(self, message_ids: list[str]) -> None:
        """Nothing is placed by this connector."""

    def taken(self, message_ids: list[str]) -> set[str]:
        # A 2xx already meant taken; nothing is left waiting.
        return set()

    def withdraw(self, message_id: str) -> bool:
        # A 2xx meant the local system had it: nothing can be taken back.
        return False

    def close(self) -> None:
        if self._own_client:
            self._client.close()
