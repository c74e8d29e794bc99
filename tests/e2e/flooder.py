"""A hostile client of the e2e tests, in a process of its own so that a flood can hold more
connections than one process's open-files limit allows.

`python -m tests.e2e.flooder PORT COUNT` opens COUNT connections to 127.0.0.1:PORT, sends
each a request head that never ends, prints one line `held N failed F`, and keeps them all
open until its stdin closes. A server that stops accepting makes connects fail; after a few
in a row the flooder stops trying and says so in F.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import sys
from typing import Final

PARTIAL_HEAD: Final = b"POST /v1/events HTTP/1.1\r\nHost: api\r\nX-Slow: "
CONNECT_TIMEOUT_S: Final = 5.0
GIVE_UP_AFTER: Final = 5  # connects failed in a row


def flood(port: int, count: int) -> tuple[list[socket.socket], int]:
    held: list[socket.socket] = []
    failed = in_a_row = 0
    while len(held) + failed < count and in_a_row < GIVE_UP_AFTER:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
        except OSError:
            failed += 1
            in_a_row += 1
            continue
        in_a_row = 0
        held.append(sock)
        with contextlib.suppress(OSError):  # refused at once: still a connection it took
            sock.sendall(PARTIAL_HEAD)
    return held, count - len(held)


def main() -> int:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held, failed = flood(port, count)
    print(f"held {len(held)} failed {failed}", flush=True)
    sys.stdin.read()
    for sock in held:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
