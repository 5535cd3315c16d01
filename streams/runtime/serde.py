"""Faust adapters for the one codec in schemas.codec: table keys and table state values."""

from __future__ import annotations

from typing import Any

from faust.serializers.codecs import Codec
from pydantic import BaseModel

from schemas import codec


class KeyCodec(Codec):
    """Table keys are plain UTF-8 strings (order ids, waybill numbers)."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode("utf-8") if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode("utf-8")


class StateCodec(Codec):
    """Table values: one pydantic state model per table, as orjson bytes."""

    def __init__(self, model: type[BaseModel], **kwargs: Any) -> None:
        self.model = model
        super().__init__(model=model, **kwargs)

    def _dumps(self, obj: Any) -> bytes:
        return codec.dumps_state(obj)

    def _loads(self, s: bytes) -> Any:
        return self.model.model_validate(codec.loads(s))
