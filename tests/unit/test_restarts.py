"""`hookline up`'s supervision as plain values: when a dead service is restarted, when `up`
gives up, the ready line each service prints, and the environment a child is given."""

from __future__ import annotations

import pytest

from hookline.app.processes import Address, child_environment, exit_description, ready_address
from hookline.app.restarts import GiveUp, Restart, RestartPolicy

POLICY = RestartPolicy(first_delay_s=1.0, max_delay_s=30.0, max_deaths=8, window_s=600.0)


def test_the_wait_doubles_with_each_recent_death_up_to_its_cap() -> None:
    deaths: list[float] = []
    waits: list[float] = []
    for now in range(7):  # seven deaths a second apart
        deaths.append(float(now))
        decision = POLICY.after(deaths, float(now))
        assert isinstance(decision, Restart), decision
        waits.append(decision.delay_s)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_too_many_deaths_within_the_window_give_up() -> None:
    deaths = [float(at) for at in range(8)]
    assert POLICY.after(deaths, 7.0) == GiveUp(deaths=8, window_s=600.0)


def test_deaths_older_than_the_window_are_forgotten() -> None:
    """A service that ran for long before dying again starts over at the first wait, and
    its old deaths never add up to giving up."""
    old = [float(at) for at in range(7)]
    now = 10_000.0
    assert POLICY.after([*old, now], now) == Restart(1.0)
    # the eighth death, but the first is 600.5 s old: seven within the window, so not yet
    assert POLICY.after([*old, 600.5], 600.5) == Restart(POLICY.max_delay_s)


@pytest.mark.parametrize(
    ("name", "line", "address"),
    [
        (
            "router",
            "router ready: consuming hookline.events (group hookline.router), metrics on "
            "127.0.0.1:9101",
            Address("127.0.0.1", 9101),
        ),
        (
            "projector",
            "projector ready: consuming a, b (group g) into PostgreSQL, metrics on ::1:40123",
            Address("::1", 40123),
        ),
        (
            "api",
            "api ready: listening on 127.0.0.1:8080 (/metrics, /healthz and /readyz there too)",
            Address("127.0.0.1", 8080),
        ),
        ("api", "router ready: consuming x, metrics on 127.0.0.1:9101", None),  # not its own
        ("router", "2026-12-05 WARNING router: on 127.0.0.1:9101", None),
    ],
)
def test_the_ready_line_says_where_a_service_serves(
    name: str, line: str, address: Address | None
) -> None:
    assert ready_address(name, line) == address


def test_an_exit_is_described_by_its_code_or_its_signal() -> None:
    assert exit_description(1) == "exit code 1"
    assert exit_description(-9) == "killed by SIGKILL"


def test_a_child_reads_the_settings_it_is_given_not_those_inherited() -> None:
    inherited = {"PATH": "/bin", "HOOKLINE_API_PORT": "8080", "HOOKLINE_OUTBOX_DSN": "x"}
    given = {"HOOKLINE_API_PORT": "0"}
    assert child_environment(inherited, given) == {"PATH": "/bin", "HOOKLINE_API_PORT": "0"}
