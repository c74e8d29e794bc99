"""Errors of the router, split by what the process should do (each stops it loudly).

RouterError  (a core.errors.HooklineError, as every package's root is)
 ├── RouterFenced              another producer took over our transactional id: a zombie stops
 ├── TransactionsFailing       the transactional producer keeps failing fatally
 ├── ClientsBroken             the routing loop's Kafka clients cannot go on; the router
 │    │                        builds new ones in-process, a bounded number of times
 │    ├── ProducerWedged       a transactional call never came back
 │    └── ConsumerFailed       the consumer reported a fatal error (e.g. fenced)
 ├── ClientsKeepBreaking       new clients broke too often: something else is wrong
 └── SubscriptionsUnavailable  the subscriptions table stopped or never became ready
"""

from __future__ import annotations

from core.errors import HooklineError


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


class ClientsBroken(RouterError):
    """The routing loop's consumer or producer is unusable; new clients may work."""


class ProducerWedged(ClientsBroken):
    def __init__(self, transactional_id: str, waited_s: float) -> None:
        super().__init__(
            f"transactional id {transactional_id}: sending offsets and committing did not"
            f" return in {waited_s:g} s"
        )
        self.transactional_id = transactional_id
        self.waited_s = waited_s


class ConsumerFailed(ClientsBroken):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the events consumer failed: {reason}")
        self.reason = reason


class ClientsKeepBreaking(RouterError):
    def __init__(self, rebuilds: int, window_s: float, last: ClientsBroken) -> None:
        super().__init__(f"Kafka clients rebuilt {rebuilds} times in {window_s:g} s; last: {last}")
        self.rebuilds = rebuilds
        self.window_s = window_s
        self.last = last


class SubscriptionsUnavailable(RouterError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"subscriptions table: {reason}")
        self.reason = reason
