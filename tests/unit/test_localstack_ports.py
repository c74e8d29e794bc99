"""The local stack's port check: a restarted server gets its port back."""

from __future__ import annotations

import socket

from hookline.app.localstack.process import port_is_free


def _listener() -> tuple[socket.socket, int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port: int = server.getsockname()[1]
    return server, port


def test_a_listening_port_is_taken() -> None:
    server, port = _listener()
    with server:
        assert not port_is_free(port)


def test_a_port_whose_server_died_with_connections_in_time_wait_is_free() -> None:
    """Regression: after `kill -9` of the broker its connections lingered in TIME_WAIT, the
    check called the port taken, and the restarted broker moved to new ports, stranding its
    clients on the old ones."""
    server, port = _listener()
    with server, socket.create_connection(("127.0.0.1", port)) as client:
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side waits in TIME_WAIT
        assert client.recv(1) == b""
    assert port_is_free(port)


def test_a_port_taken_on_any_address_is_taken_for_loopback_and_the_other_way() -> None:
    with socket.create_server(("0.0.0.0", 0)) as everywhere:
        port: int = everywhere.getsockname()[1]
        assert not port_is_free(port, "127.0.0.1")
        assert not port_is_free(port, "0.0.0.0")
    with socket.create_server(("127.0.0.1", 0)) as loopback:
        port = loopback.getsockname()[1]
        assert not port_is_free(port, "0.0.0.0")


def test_only_address_in_use_counts_as_taken() -> None:
    """An address this machine does not have (TEST-NET-1) is the server's own bind to refuse,
    with its own message; the check does not call it a port in use."""
    assert port_is_free(8080, "192.0.2.1")
