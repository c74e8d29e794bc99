"""Errors of the router, split by what the process should do (each stops it loudly).

RouterError
 ├── RouterFenced              another producer took over our transactional id: a zombie stops
 ├── TransactionsFailing       the transactional producer keeps failing fatally
 └── SubscriptionsUnavailable  the subscriptions table stopped or never became ready
"""

from __future__ import annotations

from hookline.errors import HooklineError


class RouterError(HooklineError):
    """Root of the router's errors; its message is one line fit to show a user."""


class RouterFenced(RouterError):
    def __init__(self, transactional_id: str, reason: str) -> None:
        super().__init__(f"fenced: transactional id {transactional_id}: {reason}")
        self.transactional_id = transactional_id
        self.reason = reason


class TransactionsFailing(RouterError):
    def __init__(self, transactional_id: str, failures: int, reason: str) -> None:
        super().__init__(
            f"transactional id {transactional_id}: {failures} fatal errors in a row: {reason}"
        )
        self.transactional_id = transactional_id
        self.failures = failures
        self.reason = reason


class SubscriptionsUnavailable(RouterError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"subscriptions table: {reason}")
        self.reason = reason
