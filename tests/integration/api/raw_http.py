"""HTTP/1.1 over a raw socket, for tests that need the server to see bytes exactly as written
(header bytes that are not UTF-8 or not latin-1, which an HTTP client would refuse or encode)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


async def send(port: int, request: Request) -> Reply:
    """One request over a fresh connection, bytes as given; the answer as the server wrote it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        b"%s %s HTTP/1.1" % (request.method.encode(), request.target),
        b"Host: fuzz",
        b"Connection: close",
        b"Content-Length: %d" % len(request.body),
        *(name + b": " + value for name, value in request.headers),
    ]
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + request.body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    fields, _, body = rest.partition(b"\r\n\r\n")
    content_type = ""
    for line in fields.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            content_type = value.decode("latin-1").split(";")[0].strip()
    return Reply(int(status_line.split()[1]), content_type, body)


def problem_of(reply: Reply, *, request: Request | None = None) -> dict[str, Any]:
    """The problem document of a refusal (`type`, `title`, `status`); fails unless it is one,
    naming the request when given."""
    where = "" if request is None else f"{request.method} {request.target!r} {request.headers!r}: "
    assert reply.content_type == "application/problem+json", f"{where}{reply}"
    problem: dict[str, Any] = json.loads(reply.body)
    assert isinstance(problem["type"], str), f"{where}{problem}"
    assert isinstance(problem["title"], str), f"{where}{problem}"
    assert problem["status"] == reply.status, f"{where}{problem}"
    return problem
