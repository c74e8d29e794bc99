"""`hookline router`'s flags: the batch linger and interval are parsed in milliseconds,
negative refused; --instance-id is a setting."""

from __future__ import annotations

import pytest

import router.cli  # noqa: F401 - registers `hookline router`
from hookline.app.cli import build_parser
from hookline.runtime.settings import Settings


def test_the_batch_linger_is_read_in_milliseconds() -> None:
    args = build_parser().parse_args(["router", "--batch-linger-ms", "20"])
    assert args.batch_linger_ms == 20


def test_the_default_linger_is_the_routers() -> None:
    from router.service import DEFAULT_BATCH_LINGER_S

    args = build_parser().parse_args(["router"])
    assert args.batch_linger_ms == round(DEFAULT_BATCH_LINGER_S * 1000)


def test_the_batch_interval_is_read_in_milliseconds() -> None:
    from router.service import DEFAULT_BATCH_INTERVAL_S

    assert (
        build_parser().parse_args(["router", "--batch-interval-ms", "40"]).batch_interval_ms == 40
    )
    default = build_parser().parse_args(["router"]).batch_interval_ms
    assert default == round(DEFAULT_BATCH_INTERVAL_S * 1000)


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "must be 0 or more, got -1"), ("soon", "not a whole number of milliseconds")],
)
@pytest.mark.parametrize("flag", ["--batch-linger-ms", "--batch-interval-ms"])
def test_a_bad_linger_or_interval_is_one_plain_line(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["router", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_the_instance_id_flag_is_the_instance_id_setting() -> None:
    args = build_parser().parse_args(["router", "--instance-id", "router-1"])
    assert args.setting_instance_id == "router-1"
    settings = Settings.load(environ={}, overrides={"instance_id": args.setting_instance_id})
    assert settings.instance_id == "router-1"
