"""Contender (a): a plain aiokafka consume -> produce passthrough, the floor of what Python can do.

    python -m bench.passthrough_aiokafka --bootstrap 127.0.0.1:9092 --group g --out bench-out \\
        order-paid waybill-uploaded tracking-scans cancellation-requests clock-ticks

One consumer in group `--group` (earliest, manual commits) reads the topics in `getmany`
batches and sends every record's key and value unchanged to `--out`; after a batch's sends are
acknowledged its offsets are committed when a second has passed since the last commit, or at
once when the next `getmany` comes back empty (caught up), so committed offsets trail
consumption by at most ~1 s while busy and by one empty poll (100 ms) at the end. At-least-once,
like the other contenders. Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

COMMIT_EVERY_S = 1.0


async def run(bootstrap: str, group: str, topics: list[str], out: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group, client_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=10_000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=f"{group}-out", acks="all",
                                enable_idempotence=False, linger_ms=5, max_batch_size=65536)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await producer.start()
    await consumer.start()
    try:
        dirty, last_commit = False, time.monotonic()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            if batches:
                futures = [await producer.send(out, value=record.value, key=record.key)
                           for records in batches.values() for record in records]
                await asyncio.gather(*futures)
                dirty = True
            if dirty and (not batches or time.monotonic() - last_commit >= COMMIT_EVERY_S):
                await consumer.commit()
                dirty, last_commit = False, time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--out", required=True, help="output topic (create it first with the input's partitions)")
    parser.add_argument("topics", nargs="+", help="input topics")
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.group, args.topics, args.out))


if __name__ == "__main__":
    main()
