"""The Celery wiring issue 5 asks for (`keepa_deals.service.celery_app`, `celery_config`).

Broker and results in REDIS_URL under `{KEEPA_REDIS_PREFIX}celery:`, the two task names
on their own queues, beat's schedule with one interval's expiry, the worker's limits,
all converted from service time to wall time by KEEPA_TIME_SCALE, and kombu's Redis
transport replaced by keepa_deals.service.broker_transport.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kombu.transport
import pytest
import redis
from celery import Celery
from celery.app.utils import find_app
from celery.beat import Scheduler
from kombu.connection import Connection as _Connection

from keepa_deals.config import Settings
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.service import broker_transport, celery_app
from keepa_deals.service.celery_app import (
    BACKFILL_QUEUE,
    BACKFILL_TASK,
    UPSERT_QUEUE,
    UPSERT_TASK,
    celery_settings,
    make_app,
)
from keepa_deals.service.timebase import wall_s

URL = "redis://127.0.0.1:6390/4"  # never connected to, except where a test says so
ORIGIN_S = 1_767_225_600.0
SIM_URL = "http://127.0.0.1:8765"  # a scaled clock is refused against the real Keepa
TASKS = {UPSERT_TASK: UPSERT_QUEUE, BACKFILL_TASK: BACKFILL_QUEUE}

AppFactory = Callable[[Settings], Celery]
# kombu's Connection is untyped; a Connection only resolves its transport, never connects.
Connection: Any = _Connection


@pytest.fixture
def new_app() -> Iterator[AppFactory]:
    """make_app(settings); afterwards the module's app is the current one again and the
    new apps' pools are closed."""
    made: list[Celery] = []

    def factory(settings: Settings) -> Celery:
        app = make_app(settings)
        made.append(app)
        return app

    yield factory
    for app in made:
        app.close()
    celery_app.app.set_current()


def conf(**fields: Any) -> dict[str, Any]:
    return celery_settings(Settings(redis_url=URL, **fields))


def text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def our_tasks(app: Celery) -> set[str]:
    return {name for name in app.tasks if name.startswith("keepa_deals.")}


# --- broker, results, keys ---------------------------------------------------------------


def test_broker_and_result_backend_are_redis_url() -> None:
    c = conf()
    assert c["broker_url"] == URL
    assert c["result_backend"] == URL


def test_the_settings_come_from_the_environment_variables_issue_5_names() -> None:
    s = Settings.from_mapping(
        {
            "REDIS_URL": "redis://cache.example:6380/2",
            "KEEPA_REDIS_PREFIX": "prod:",
            "UPSERT_EVERY_S": "300",
            "BACKFILL_EVERY_S": "45",
            "WORKER_CONCURRENCY": "3",
            "TASK_SOFT_TIME_LIMIT_S": "700",
            "TASK_TIME_LIMIT_S": "800",
        }
    )
    c = celery_settings(s)
    assert c["broker_url"] == c["result_backend"] == "redis://cache.example:6380/2"
    assert c["broker_transport_options"]["global_keyprefix"] == "prod:celery:"
    assert c["result_backend_transport_options"]["global_keyprefix"] == "prod:celery:"
    assert c["beat_schedule"]["update-recent-deals"]["schedule"] == 300
    assert c["beat_schedule"]["backfill-deals"]["schedule"] == 45
    assert c["worker_concurrency"] == 3
    assert (c["task_soft_time_limit"], c["task_time_limit"]) == (700, 800)


def test_celerys_keys_carry_the_prefix_for_broker_and_results() -> None:
    c = conf(redis_prefix="keepa:")
    assert c["broker_transport_options"]["global_keyprefix"] == "keepa:celery:"
    assert c["result_backend_transport_options"] == {"global_keyprefix": "keepa:celery:"}
    other = conf(redis_prefix="staging.b:")
    assert other["broker_transport_options"]["global_keyprefix"] == "staging.b:celery:"
    assert other["result_backend_transport_options"]["global_keyprefix"] == "staging.b:celery:"


def test_on_a_real_redis_every_celery_key_is_under_the_prefix(
    redis_server: RedisServerProcess,
    redis_client: redis.Redis,
    prefix: str,
    new_app: AppFactory,
) -> None:
    app = new_app(Settings(redis_url=redis_server.url, redis_prefix=prefix))
    before = set(redis_client.keys("*"))
    sent = [app.send_task(UPSERT_TASK), app.send_task(BACKFILL_TASK)]
    app.backend.store_result(sent[0].id, {"task": "upsert"}, "SUCCESS")
    try:
        new = {text(key) for key in set(redis_client.keys("*")) - before}
        ours = f"{prefix}celery:"
        assert new and all(key.startswith(ours) for key in new), sorted(new)
        # One list per queue, each holding its task's message.
        for task, queue in TASKS.items():
            assert redis_client.llen(f"{ours}{queue}") == 1
            message = json.loads(redis_client.lindex(f"{ours}{queue}", 0) or b"{}")
            assert message["headers"]["task"] == task
        assert f"{ours}celery-task-meta-{sent[0].id}" in new
        assert sent[0].get(timeout=5) == {"task": "upsert"}
    finally:
        keys = redis_client.keys(f"{prefix}*")
        if keys:
            redis_client.delete(*keys)


# --- tasks and queues --------------------------------------------------------------------


def test_make_app_registers_both_tasks_from_keepa_deals_tasks(new_app: AppFactory) -> None:
    app = new_app(Settings(redis_url=URL))
    assert "keepa_deals.service.tasks" in app.conf.include
    app.loader.import_default_modules()  # what a worker does at start-up
    assert our_tasks(app) == {UPSERT_TASK, BACKFILL_TASK}
    assert UPSERT_TASK == "keepa_deals.update_recent_deals"
    assert BACKFILL_TASK == "keepa_deals.backfill_deals"


def test_the_module_app_has_both_tasks_once_tasks_is_imported() -> None:
    tasks = importlib.import_module("keepa_deals.service.tasks")
    assert our_tasks(celery_app.app) == {UPSERT_TASK, BACKFILL_TASK}
    for task, name in (
        (tasks.update_recent_deals, UPSERT_TASK),
        (tasks.backfill_deals, BACKFILL_TASK),
    ):
        assert task.name == name and task.app is celery_app.app
        assert celery_app.app.tasks[name] is task._get_current_object()  # not a copy


@pytest.mark.parametrize(("task", "queue"), sorted(TASKS.items()))
def test_each_task_is_routed_to_its_own_queue(task: str, queue: str, new_app: AppFactory) -> None:
    assert conf()["task_routes"][task] == {"queue": queue}
    app = new_app(Settings(redis_url=URL))
    assert app.amqp.router.route({}, task)["queue"].name == queue
    assert UPSERT_QUEUE == "upsert" and BACKFILL_QUEUE == "backfill"


# --- beat --------------------------------------------------------------------------------


def test_beat_runs_the_upserter_every_900_s_and_the_backfiller_every_60_s_by_default() -> None:
    for settings in (Settings(redis_url=URL), Settings.from_mapping({"REDIS_URL": URL})):
        schedule = celery_settings(settings)["beat_schedule"]
        assert schedule == {
            "update-recent-deals": {
                "task": UPSERT_TASK,
                "schedule": 900,
                "options": {"queue": UPSERT_QUEUE, "expires": 900},
            },
            "backfill-deals": {
                "task": BACKFILL_TASK,
                "schedule": 60,
                "options": {"queue": BACKFILL_QUEUE, "expires": 60},
            },
        }


def test_beat_follows_upsert_every_s_and_backfill_every_s() -> None:
    schedule = conf(upsert_every_s=1200, backfill_every_s=90)["beat_schedule"]
    upsert, backfill = schedule["update-recent-deals"], schedule["backfill-deals"]
    assert (upsert["schedule"], upsert["options"]["expires"]) == (1200, 1200)
    assert (backfill["schedule"], backfill["options"]["expires"]) == (90, 90)


def test_beat_sends_each_run_to_its_queue_expiring_after_one_interval(
    redis_server: RedisServerProcess,
    redis_client: redis.Redis,
    prefix: str,
    new_app: AppFactory,
) -> None:
    """Celery's own Scheduler, reading our schedule, publishing to a real Redis."""
    app = new_app(Settings(redis_url=redis_server.url, redis_prefix=prefix, backfill_every_s=120))
    scheduler = Scheduler(app, lazy=True)
    scheduler.merge_inplace(app.conf.beat_schedule)
    entries = scheduler.schedule
    assert entries["update-recent-deals"].schedule.run_every == timedelta(seconds=900)
    assert entries["backfill-deals"].schedule.run_every == timedelta(seconds=120)
    try:
        for name, task, queue, every_s in (
            ("update-recent-deals", UPSERT_TASK, UPSERT_QUEUE, 900),
            ("backfill-deals", BACKFILL_TASK, BACKFILL_QUEUE, 120),
        ):
            sent_at = datetime.now(UTC)
            scheduler.apply_async(entries[name])
            raw = redis_client.lindex(f"{prefix}celery:{queue}", 0)
            assert raw is not None, f"nothing on {queue}"
            headers = json.loads(raw)["headers"]
            assert headers["task"] == task
            expires = datetime.fromisoformat(headers["expires"])
            assert abs((expires - sent_at).total_seconds() - every_s) < 5
    finally:
        scheduler.close()
        keys = redis_client.keys(f"{prefix}*")
        if keys:
            redis_client.delete(*keys)


# --- the worker --------------------------------------------------------------------------


def test_worker_defaults_concurrency_2_prefetch_1_late_acks_and_time_limits() -> None:
    for settings in (Settings(redis_url=URL), Settings.from_mapping({"REDIS_URL": URL})):
        c = celery_settings(settings)
        assert c["worker_concurrency"] == 2
        assert c["worker_prefetch_multiplier"] == 1
        assert c["task_acks_late"] is True
        assert c["task_soft_time_limit"] == settings.task_soft_time_limit_s == 900
        assert c["task_time_limit"] == settings.task_time_limit_s == 1020
        assert c["task_soft_time_limit"] < c["task_time_limit"]


def test_time_limits_follow_their_settings() -> None:
    c = conf(task_soft_time_limit_s=700, task_time_limit_s=750)
    assert (c["task_soft_time_limit"], c["task_time_limit"]) == (700, 750)
    assert conf(worker_concurrency=5)["worker_concurrency"] == 5


def test_the_app_carries_the_settings(new_app: AppFactory) -> None:
    app = new_app(Settings(redis_url=URL, redis_prefix="p1:", worker_concurrency=4))
    assert app.conf.broker_url == app.conf.result_backend == URL
    assert app.conf.worker_concurrency == 4
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_acks_late is True
    assert app.conf.broker_transport_options["global_keyprefix"] == "p1:celery:"
    assert app.conf.result_backend_transport_options["global_keyprefix"] == "p1:celery:"
    assert (
        app.conf.beat_schedule
        == celery_settings(Settings(redis_url=URL, redis_prefix="p1:", worker_concurrency=4))[
            "beat_schedule"
        ]
    )


# --- KEEPA_TIME_SCALE --------------------------------------------------------------------


def test_a_time_scale_turns_service_seconds_into_wall_seconds() -> None:
    settings = Settings(
        redis_url=URL, time_scale=60.0, time_origin_s=ORIGIN_S, keepa_api_url=SIM_URL
    )
    c = celery_settings(settings)
    upsert = c["beat_schedule"]["update-recent-deals"]
    backfill = c["beat_schedule"]["backfill-deals"]
    assert wall_s(settings, 900) == 15
    assert (upsert["schedule"], upsert["options"]["expires"]) == (15, 15)
    assert (backfill["schedule"], backfill["options"]["expires"]) == (1, 1)
    assert c["task_soft_time_limit"] == 900 / 60
    assert c["task_time_limit"] == 1020 / 60
    assert c["task_soft_time_limit"] < c["task_time_limit"]
    # Counts are not durations: the scale leaves them alone.
    assert c["worker_concurrency"] == 2 and c["worker_prefetch_multiplier"] == 1


def test_a_time_scale_applies_to_every_configured_duration() -> None:
    settings = Settings(
        redis_url=URL,
        upsert_every_s=600,
        backfill_every_s=30,
        task_soft_time_limit_s=660,
        task_time_limit_s=720,
        time_scale=12.0,
        time_origin_s=ORIGIN_S,
        keepa_api_url=SIM_URL,
    )
    c = celery_settings(settings)
    assert c["beat_schedule"]["update-recent-deals"]["schedule"] == 50
    assert c["beat_schedule"]["update-recent-deals"]["options"]["expires"] == 50
    assert c["beat_schedule"]["backfill-deals"]["schedule"] == 2.5
    assert c["beat_schedule"]["backfill-deals"]["options"]["expires"] == 2.5
    assert (c["task_soft_time_limit"], c["task_time_limit"]) == (55, 60)


def test_unscaled_durations_are_the_settings_themselves() -> None:
    c = conf(upsert_every_s=901, backfill_every_s=61)
    assert c["beat_schedule"]["update-recent-deals"]["schedule"] == 901
    assert c["beat_schedule"]["backfill-deals"]["schedule"] == 61


# --- the broker transport ----------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6390/0", "rediss://127.0.0.1:6390/0"])
def test_make_app_installs_the_broker_transport(
    url: str, new_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From kombu's own mapping (as before anything installed ours), make_app() makes a
    redis:// or rediss:// broker resolve to keepa_deals.service.broker_transport.Transport."""
    monkeypatch.setitem(
        kombu.transport.TRANSPORT_ALIASES, "redis", "kombu.transport.redis:Transport"
    )
    monkeypatch.setitem(
        kombu.transport.TRANSPORT_ALIASES, "rediss", "kombu.transport.redis:Transport"
    )
    for scheme in ("redis", "rediss"):
        kombu.transport._transport_cache.pop(scheme, None)
    assert not isinstance(Connection(url).transport, broker_transport.Transport)

    app = new_app(Settings(redis_url=url))
    assert isinstance(Connection(url).transport, broker_transport.Transport)
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker_transport.Transport)
        scheme = url.split("://", maxsplit=1)[0]
        assert connection.as_uri().startswith(f"{scheme}://")  # the URL keeps its scheme


# --- celery_config.py, the module `celery -A celery_config` loads --------------------------


def test_celery_config_exposes_the_app_with_both_tasks() -> None:
    module = importlib.import_module("celery_config")
    importlib.import_module("keepa_deals.service.tasks")  # what the worker's `include` imports
    assert isinstance(module.app, Celery)
    assert module.app is celery_app.app
    assert our_tasks(module.app) == {UPSERT_TASK, BACKFILL_TASK}
    assert module.celery_settings is celery_settings
    # Celery's own lookup for `-A celery_config` finds that same app.
    assert find_app("celery_config") is module.app


def test_a_worker_started_without_queues_consumes_both(new_app: AppFactory) -> None:
    app = new_app(Settings(redis_url=URL))
    # What a worker without -Q consumes: the declared queues, else the default one.
    assert set(app.amqp.queues) == {UPSERT_QUEUE, BACKFILL_QUEUE}


def test_celery_config_app_is_configured_from_the_settings() -> None:
    module = importlib.import_module("celery_config")
    routes = module.app.conf.task_routes
    assert routes == {UPSERT_TASK: {"queue": "upsert"}, BACKFILL_TASK: {"queue": "backfill"}}
    assert set(module.app.conf.beat_schedule) == {"update-recent-deals", "backfill-deals"}
    assert module.app.conf.task_acks_late is True
    assert module.app.conf.worker_prefetch_multiplier == 1


# --- task events, for Flower -------------------------------------------------------------


def test_task_events_are_on_for_flower() -> None:
    assert conf()["worker_send_task_events"] is True
    assert conf()["task_send_sent_event"] is True


@pytest.mark.slow
def test_a_real_worker_sends_the_events_flower_shows_with_arguments_and_result(
    redis_server: RedisServerProcess, prefix: str, tmp_path: Path, new_app: AppFactory
) -> None:
    """What Flower sees: a real worker (as `keepa-deals worker` starts it) runs the
    backfiller against the simulator, and an EventReceiver on the same app gets
    task-received (with the arguments), task-started and task-succeeded (with the result)."""
    sim = KeepaSimulator(seed=11, refill_rate=300, clock="wall", catalogue_size=600).start()
    values = {
        "REDIS_URL": redis_server.url,
        "KEEPA_REDIS_PREFIX": prefix,
        "DEALS_DB_PATH": str(tmp_path / "deals.db"),
        "KEEPA_API_URL": sim.url,
        "KEEPA_API_KEY": "eventstestkey0123456789abcdef",
        "HARVEST_MAX_RUN_S": "10",  # a short run: the test waits for its end
    }
    app = new_app(Settings.from_mapping(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPA_", "REDIS_"))}
    env.update(values, PYTHONUNBUFFERED="1")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "keepa_deals", "worker", "--loglevel", "INFO"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    events: list[dict[str, Any]] = []
    try:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": events.append})
            # Its queue is bound before the task is sent: no event is missed.
            with receiver.consumer_context(wakeup=False) as (bound, _, _):
                sent = app.send_task(BACKFILL_TASK, queue=BACKFILL_QUEUE)

                def seen(kind: str) -> list[dict[str, Any]]:
                    return [e for e in events if e["type"] == kind and e.get("uuid") == sent.id]

                deadline = time.monotonic() + 120  # generous: a loaded machine, worker start
                while not seen("task-succeeded") and not seen("task-failed"):
                    if worker.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(
                            f"no task-succeeded within 120 s (worker exit {worker.poll()}); "
                            f"events {[e['type'] for e in events]}\n"
                            + log_path.read_text(errors="replace")[-4000:]
                        )
                    with contextlib.suppress(TimeoutError, socket.timeout):
                        bound.drain_events(timeout=1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        sim.stop()
    assert seen("task-failed") == []
    # (task-sent comes from the sender, not the worker: not asserted here.)
    (received,) = seen("task-received")
    assert received["name"] == BACKFILL_TASK
    assert (received["args"], received["kwargs"]) == ("()", "{}")
    (succeeded,) = seen("task-succeeded")
    # The run's summary, as the task returned it (Flower shows this repr).
    assert "'task': 'backfill'" in succeeded["result"]
