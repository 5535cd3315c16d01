"""A worker stopped mid-stream and started again recovers its tables and finishes exactly as one run."""

import asyncio
import re

import pytest

from streams.cli.replay import replay
from streams.cli.supervise import WorkerProcess, read_topic, wait_idle
from streams.inprocess.engine import InProcessEngine
from streams.kafka.embedded import free_port
from streams.rules_file import load_rules
from tests.integration.brokers import both_brokers, new_broker
from tests.integration.simulated import simulated_stream

pytestmark = pytest.mark.integration
APP_ID = "shipguard-restart"


@both_brokers
@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_restarted_worker_recovers_every_order_and_number_and_emits_nothing_twice(tmp_path, store, kind):
    events, labels = simulated_stream(tmp_path, "--orders", "300", "--days", "4", "--seed", "3", "--cancel-share", "0")
    lines = events.read_text(encoding="utf-8").splitlines(keepends=True)
    first, last = tmp_path / "first.jsonl", tmp_path / "last.jsonl"
    first.write_text("".join(lines[:-1]), encoding="utf-8")   # everything but the closing tick
    last.write_text(lines[-1], encoding="utf-8")

    before_tick = InProcessEngine(load_rules())
    asyncio.run(before_tick.run_file(first))
    reference = InProcessEngine(load_rules())
    asyncio.run(reference.run_file(events))
    assert before_tick.orders and before_tick.waybills, "the stream leaves orders and numbers to recover"

    with new_broker(kind) as broker:
        bootstrap = [broker.bootstrap]
        log = tmp_path / "worker.log"
        env = {"SHIPGUARD_STORE": store}
        with WorkerProcess(broker.url, log, app_id=APP_ID, web_port=free_port(), data_dir=tmp_path / "data",
                           extra_env=env):
            replay(first, bootstrap, 8, progress=False)
            wait_idle(bootstrap, APP_ID, timeout=120)
        # memory: a new data dir, so everything comes back from the changelogs; rocksdb: the same
        # data dir, so the store opens from disk and reads only what it has not persisted
        data_dir = tmp_path / ("other" if store == "memory" else "data")
        again = WorkerProcess(broker.url, log, app_id=APP_ID, web_port=free_port(), data_dir=data_dir, extra_env=env)
        with again:
            ready = re.search(r"worker ready: .* orders=(\d+) waybills=(\d+)", again.log_text())
            assert ready and (int(ready[1]), int(ready[2])) == (len(before_tick.orders), len(before_tick.waybills))
            replay(last, bootstrap, 8, progress=False)
            wait_idle(bootstrap, APP_ID, timeout=120)
            warnings = read_topic(bootstrap, "violation-warnings")
    got = sorted((w["warning_id"], w["stage"], w["occurred_at"]) for w in warnings)
    want = sorted((w["warning_id"], w["stage"], w["occurred_at"]) for w in reference.output("violation-warnings"))
    assert got == want and want
