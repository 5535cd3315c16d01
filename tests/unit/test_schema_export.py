"""The committed JSON Schemas under schemas/json are exactly what the models export."""

from schemas.export import PACKAGED_DIR, export, render, topic_schemas
from streams.topics import CONTRACT_TOPICS


def test_every_contract_topic_has_a_committed_json_schema_that_matches_the_models():
    schemas = topic_schemas()
    assert set(schemas) == set(CONTRACT_TOPICS)
    drifted = [topic for topic, schema in schemas.items()
               if (PACKAGED_DIR / f"{topic}.schema.json").read_bytes() != render(schema)]
    assert drifted == [], f"run `shipguard schemas export schemas/json`: {drifted} drifted from the models"


def test_export_writes_one_file_per_topic(tmp_path):
    written = export(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{t}.schema.json" for t in CONTRACT_TOPICS)


def test_the_exported_schemas_say_money_is_a_string_and_times_carry_an_offset():
    order = topic_schemas()["order-paid"]
    assert order["properties"]["amount"]["type"] == "string"
    assert order["properties"]["paid_at"]["format"] == "date-time"
    assert set(order["properties"]["platform"]["enum"]) == {"douyin", "taobao", "tiktok"}
