"""Every package's root exception is a HooklineError, so the command line turns any failure a
user can cause into one plain line rather than a traceback."""

from __future__ import annotations

import pytest

from api.model.errors import ApiError, ProjectionError
from core.errors import CoreError, HooklineError
from deliverer.errors import DelivererError
from producers.errors import PublishError
from router.errors import RouterError
from schemas.errors import SchemaError


@pytest.mark.parametrize(
    "root",
    [CoreError, SchemaError, RouterError, DelivererError, PublishError, ApiError, ProjectionError],
)
def test_every_package_root_is_a_hookline_error(root: type[Exception]) -> None:
    assert issubclass(root, HooklineError)


def test_a_worker_failure_is_not_an_http_problem() -> None:
    # the API middleware renders every ApiError: a projector's stop must never be one
    assert not issubclass(ProjectionError, ApiError)
