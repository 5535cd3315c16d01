"""Contender (b): a Faust passthrough agent with Faust's default settings.

    BENCH_BROKER=kafka://127.0.0.1:9092 BENCH_APP_ID=bench-faust BENCH_OUT=bench-out \\
        BENCH_TOPICS=order-paid,tracking-scans BENCH_WEB_PORT=6070 BENCH_DATADIR=/tmp/x \\
        python -m bench.passthrough_faust worker -l warn

One agent reads the input topics and sends each record's key and value unchanged to the output
topic, one `await topic.send(...)` per event: what a Faust user writes first. The app keeps
Faust's defaults (memory store, at_least_once, commit_interval 2.8 s, JSON app serializers,
stream buffer, logging as `faust worker -l warn` sets it up); set are only what it needs to run
here: the broker, a free web port and a data directory (so that it does not collide with the
worker), and the embedded broker's short session timeout (`compat.quick_group_join_settings`:
with Faust's default 60 s the first group join waits 30 s; it changes start-up only, not
throughput). The topics carry raw bytes both ways, like contender (a): neither passthrough
decodes, decoding is part of the worker's work. Create the output topic beforehand with the
inputs' partition count (the embedded broker would auto-create it with 4).
"""

from __future__ import annotations

import os

import faust

from streams.kafka.compat import quick_group_join_settings

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-faust"),
    broker=os.environ.get("BENCH_BROKER", "kafka://127.0.0.1:9092"),
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6070")),
    web_host="127.0.0.1",
    datadir=os.environ.get("BENCH_DATADIR", "bench-faust-data"),
    **quick_group_join_settings(),
)

_raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
source = app.topic(*[t for t in os.environ.get("BENCH_TOPICS", "order-paid").split(",") if t], **_raw)
out = app.topic(os.environ.get("BENCH_OUT", "bench-faust-out"), **_raw)


@app.agent(source)
async def forward(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await out.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
