"""The shutdown flag: set in the worker's main process, seen by its forked pool."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest
from celery.signals import worker_shutting_down

from keepa_deals.service import shutdown
from keepa_deals.service.celery_app import TellThePoolStep, app


@pytest.fixture(autouse=True)
def cleared() -> Iterator[None]:
    shutdown.clear()
    yield
    shutdown.clear()


def _child(ready: Connection, go: Connection, out: Connection) -> None:
    ready.send(shutdown.requested())  # forked before the request: not set yet
    go.recv()
    out.send(shutdown.requested())


def test_a_child_forked_before_the_request_sees_it() -> None:
    """As Celery's prefork pool: children forked at start-up, the flag set later by the
    main process's signal handler."""
    ctx = multiprocessing.get_context("fork")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    go_r, go_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(ready_w, go_r, out_w))
    child.start()
    try:
        assert ready_r.recv() is False
        shutdown.request()
        go_w.send(None)
        assert out_r.poll(30), "the child did not answer"
        assert out_r.recv() is True
    finally:
        child.join(30)
    assert child.exitcode == 0


def test_celerys_shutdown_signal_sets_the_flag() -> None:
    assert not shutdown.requested()
    worker_shutting_down.send(sender="keepa-deals@test", sig="SIGTERM", how="Warm", exitcode=0)
    assert shutdown.requested()


def test_a_worker_that_begins_to_stop_sets_the_flag_however_it_was_asked() -> None:
    """Remote `celery control shutdown` and the SIGHUP restart send no signal: the
    worker's blueprint closes every step before it stops the pool, ours included."""
    assert TellThePoolStep in app.steps["worker"]
    step = TellThePoolStep(parent=object())
    assert not shutdown.requested()
    step.close(object())
    assert shutdown.requested()
