"""The root of every hookline exception, and the exceptions raised by the pure core rules.

HooklineError                 every package's root derives from it (see each `errors.py`)
 └── CoreError
      ├── TargetRefused            a webhook target address is refused by the SSRF policy
      ├── InvalidSecret            a signing secret is not ``whsec_`` + base64 of 24-64 bytes
      ├── InvalidCustomHeader      a subscription's custom header is malformed or protected
      ├── InvalidField             an API input field breaks its rule: reject it, naming it
      └── SignatureError           a received webhook does not verify
           ├── SignatureMismatch         no signature in the header matches the secret
           └── TimestampOutOfTolerance   webhook-timestamp is too far from now
"""


class HooklineError(Exception):
    """Root of every hookline exception; its message is one line fit to show a user.

    It lives in the bottom layer so that every package's root can derive from it, and the
    command line catches this one class to print a plain line instead of a traceback.
    """


class CoreError(HooklineError):
    """Root of every exception raised by ``core``."""


class TargetRefused(CoreError):
    """A target address is refused by the SSRF policy (loopback, private, metadata, ...)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"target {address!r} refused: {reason}")
        self.address = address
        self.reason = reason


class InvalidSecret(CoreError, ValueError):
    """A signing secret is malformed; the message never contains the secret itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid webhook secret: {reason}")
        self.reason = reason


class InvalidCustomHeader(CoreError, ValueError):
    """A custom header would be unsafe to send or would override a protocol header."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"custom header {name!r} not allowed: {reason}")
        self.name = name
        self.reason = reason


class SignatureError(CoreError):
    """A received webhook failed verification; the receiver should answer 4xx."""


class SignatureMismatch(SignatureError):
    """No ``v1`` signature in the header matches the expected HMAC."""

    def __init__(self, msg_id: str) -> None:
        super().__init__(f"no matching signature for message {msg_id!r}")
        self.msg_id = msg_id


class TimestampOutOfTolerance(SignatureError):
    """The webhook-timestamp is further than the tolerance from now (replay protection)."""

    def __init__(self, timestamp_s: int, now_s: int, tolerance_s: int) -> None:
        super().__init__(
            f"webhook timestamp {timestamp_s} is more than {tolerance_s} s from now ({now_s})"
        )
        self.timestamp_s = timestamp_s
        self.now_s = now_s
        self.tolerance_s = tolerance_s


class InvalidField(CoreError, ValueError):
    """An input field (a subscription's url, a cursor, ...) breaks its rule; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
