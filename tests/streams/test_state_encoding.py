"""The state encoding (changelogs, RocksDB) is the wire codec's JSON, written faster."""

import argparse
import asyncio

from schemas import codec
from schemas.events import OrderPaid
from schemas.state import OrderState
from simulator.cli import add_arguments
from simulator.cli import run as simulate
from streams.cli.replay import parse_line
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from tests.factories import order_paid


def test_every_instant_read_from_the_wire_is_held_in_utc():
    paid = OrderPaid.model_validate(codec.loads(codec.dumps(order_paid())))
    assert paid.paid_at.utcoffset().total_seconds() == 0


def test_the_fast_state_encoding_writes_the_same_bytes_as_the_wire_codec_and_reads_back_equal(tmp_path):
    engine = InProcessEngine(load_rules())
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    events = tmp_path / "events.jsonl"
    assert simulate(parser.parse_args(["--orders", "200", "--days", "2", "--seed", "4", "--out", str(events),
                                       "--labels", str(tmp_path / "labels.json")])) == 0
    lines = events.read_text(encoding="utf-8").splitlines()[:1200]  # stop mid-stream: open orders
    for number, line in enumerate(lines, 1):
        asyncio.run(engine.publish_messages(parse_line(number, line, 8)))
    states = list(engine.orders.values()) + list(engine.waybills.values()) + list(engine.shops.values())
    assert any(isinstance(s, OrderState) and s.facts is not None and s.scans for s in states)
    for state in states:
        fast = codec.dumps_state(state)
        assert fast == codec.dumps(state)
        assert type(state).model_validate(codec.loads(fast)) == state
