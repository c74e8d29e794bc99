"""A service's garbage collector after start-up: what exists is frozen, young collections
are rarer."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from hookline.runtime.collector import YOUNG_THRESHOLD, tune_collector
from tests.waiting import eventually


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

    def collected() -> bool:
        # gc.collect() does nothing while another thread's collection is under way (one
        # paused in a finalizer on a thread an earlier test left): ask again until it ran
        gc.collect()
        return gone() is None

    assert eventually(collected, "the cycle collected", timeout_s=5.0)


class _Node:
    me: object
