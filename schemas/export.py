"""`shipguard schemas export DIR`: one JSON Schema per topic, generated from the pydantic models."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.events import INPUT_MODELS
from schemas.outputs import OUTPUT_MODELS

PACKAGED_DIR = Path(__file__).with_name("json")


def topic_schemas() -> dict[str, dict]:
    """topic -> JSON Schema (validation mode for inputs, serialisation mode for outputs)."""
    result: dict[str, dict] = {}
    for topic, model in INPUT_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["title"] = f"{topic} ({model.__name__})"
        schema["x-kafka-topic"] = topic
        result[topic] = schema
    for topic, model in OUTPUT_MODELS.items():
        schema = model.model_json_schema(mode="serialization")
        schema["title"] = f"{topic} ({model.__name__})"
        schema["x-kafka-topic"] = topic
        result[topic] = schema
    return result


def render(schema: dict) -> bytes:
    """Stable bytes for a schema file (sorted keys, indented, trailing newline)."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def export(directory: Path) -> list[Path]:
    """Write `<topic>.schema.json` for every topic; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, schema in topic_schemas().items():
        path = directory / f"{topic}.schema.json"
        path.write_bytes(render(schema))
        written.append(path)
    return written
