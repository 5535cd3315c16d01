"""Bytes to models at the edge: an input event, an internal feed message, or a dead letter.

Every record that cannot be decoded goes to `dead-letters` with a reason and (at most
DEAD_LETTER_RAW_BYTES of) its original bytes; the worker goes on with the next record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas import codec
from schemas.codec import BadInput
from schemas.internal import Rekeyed, Watermark
from schemas.outputs import DeadLetter
from streams import topics as T
from streams.worker.clock import StreamTime
from streams.worker.metrics import Metrics
from streams.worker.records import Outgoing, Record

log = logging.getLogger("shipguard")
MAX_MESSAGE_BYTES = 262_144  # default of SHIPGUARD_MAX_MESSAGE_BYTES
DEAD_LETTER_RAW_BYTES = 65_536  # a dead letter keeps at most this much of the original record
DEAD_LETTER_KEY_BYTES = 1_024  # and of its key (a key of a megabyte made the dead letter too large to send)
DEAD_LETTER_ERROR_CHARS = 1_800  # the reason, within the 2,000 characters of DeadLetter.error


class Decoder:
    """Decodes records for the sides; refuses what is too large or malformed."""

    def __init__(self, time: StreamTime, metrics: Metrics, wall_now: Callable[[], datetime],
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.time, self.metrics, self.wall_now = time, metrics, wall_now
        self.max_message_bytes = max_message_bytes

    def decode(self, record: Record, feed: str, kinds: Mapping[str, Any], out: list[Outgoing]) -> Any | None:
        """An input model or internal message; None for a watermark (recorded) or bad input
        (sent to dead-letters via `out`)."""
        self.metrics.consumed[record.topic] += 1
        try:
            if record.value is not None and len(record.value) > self.max_message_bytes:
                raise BadInput(f"(value): {len(record.value)} bytes, more than the maximum of "
                               f"{self.max_message_bytes} (SHIPGUARD_MAX_MESSAGE_BYTES)")
            if record.topic != feed:
                return codec.decode_input(record.topic, record.value)
            message = self._internal(record, kinds)
            if isinstance(message, Watermark):
                self.time.observe_mark(record, message)
                return None
            if isinstance(message, Rekeyed):
                return codec.decode_input(message.topic, codec.dumps(message.value))
            return message
        except BadInput as exc:
            self.time.observe(record, None)
            out.append(self.dead_letter(record, str(exc)))
            return None

    @staticmethod
    def _internal(record: Record, kinds: Mapping[str, Any]) -> Any:
        data = codec.loads(record.value or b"null")
        if not isinstance(data, dict) or data.get("kind") not in kinds:
            kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
            raise BadInput(f"kind: unknown internal message kind {str(kind)[:40]!r}")  # not the content: PII
        try:
            return kinds[data["kind"]].model_validate(data)
        except ValidationError as exc:
            raise BadInput(codec.describe(exc)) from None

    def dead_letter(self, record: Record, error: str) -> Outgoing:
        """The dead letter of `record`, refused for `error`."""
        raw, key = record.value, record.key
        if len(error) > DEAD_LETTER_ERROR_CHARS:
            error = error[:DEAD_LETTER_ERROR_CHARS] + f"... ({len(error)} characters)"
        if raw is not None and len(raw) > DEAD_LETTER_RAW_BYTES:  # a dead letter must fit on its topic
            error += f" (raw: the first {DEAD_LETTER_RAW_BYTES} of {len(raw)} bytes)"
            raw = raw[:DEAD_LETTER_RAW_BYTES]
        if key is not None and len(key) > DEAD_LETTER_KEY_BYTES:
            error += f" (key: the first {DEAD_LETTER_KEY_BYTES} of {len(key)} bytes)"
            key = key[:DEAD_LETTER_KEY_BYTES]
        text, encoding = codec.raw_text(raw)
        letter = DeadLetter(source_topic=record.topic, partition=record.partition, offset=record.offset,
                            error=error, received_at=self.wall_now(), raw=text,
                            raw_encoding=encoding)  # type: ignore[arg-type]  # raw_text says utf-8 or base64: the Literal
        self.metrics.dead_letters += 1
        log.warning("dead letter topic=%s partition=%d offset=%d error=%s",
                    record.topic, record.partition, record.offset, error[:200])
        return Outgoing(T.DEAD_LETTERS, key, codec.dumps(letter))
