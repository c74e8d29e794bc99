"""A service's garbage collector after start-up: what exists is frozen, young collections
are rarer."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from hookline.runtime.collector import YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_collections_rarer() -> None:
    middle, old = gc.get_threshold()[1:]

    tune_collector()

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_start_up_are_still_collected() -> None:
    tune_collector()
    node = _Node()
    node.me = node  # a cycle: reference counting alone never frees it
    gone = weakref.ref(node)
    del node

    assert _collected(gone)


def _collected(gone: weakref.ref[_Node]) -> bool:
    """`gc.collect()` does nothing while another thread's collection is running (one that
    paused in a finalizer, say, from a thread an earlier test left behind): ask again until
    the object is gone or a deadline passes."""
    deadline = time.monotonic() + 5.0
    while gone() is not None and time.monotonic() < deadline:
        gc.collect()
        if gone() is not None:
            time.sleep(0.01)
    return gone() is None


class _Node:
    me: object
