"""The one place that reads the environment. Every setting has a local default.

| variable | default | meaning |
|---|---|---|
| SHIPGUARD_BROKER | kafka://127.0.0.1:9092 | bootstrap URL(s), comma separated |
| SHIPGUARD_CLOCK | wall | `wall` (deadlines fire by the wall clock) or `event` (stream time from events) |
| SHIPGUARD_PARTITIONS | 8 | partitions of every topic shipguard creates |
| SHIPGUARD_DATA_DIR | ./data | worker data (table stores) |
| SHIPGUARD_RULES | (packaged defaults) | path to a rules TOML file with the thresholds |
| SHIPGUARD_WEB_PORT | 6066 | the worker's web server port |
| SHIPGUARD_BROKER_COMPAT | auto | `auto` detects the embedded broker; `embedded` or `kafka` forces it |
| SHIPGUARD_PII_SALT | (dev salt) | salt for hashing recipients; set a secret one in production |
| SHIPGUARD_LOG_LEVEL | info | worker log level |
| SHIPGUARD_APP_ID | shipguard | Faust app id: consumer group and internal topic prefix |
| SHIPGUARD_MAX_MESSAGE_BYTES | 262144 | a larger input record goes to dead-letters unread |
| SHIPGUARD_STORE | memory | table store: `memory` (rebuilt from the changelogs at start) or `rocksdb` (on disk under the data dir) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

ENV_VARS = (
    "SHIPGUARD_BROKER", "SHIPGUARD_CLOCK", "SHIPGUARD_PARTITIONS", "SHIPGUARD_DATA_DIR",
    "SHIPGUARD_RULES", "SHIPGUARD_WEB_PORT", "SHIPGUARD_BROKER_COMPAT", "SHIPGUARD_PII_SALT",
    "SHIPGUARD_LOG_LEVEL", "SHIPGUARD_APP_ID", "SHIPGUARD_STORE", "SHIPGUARD_MAX_MESSAGE_BYTES",
)

DEV_SALT = "shipguard-dev-salt-change-me"


class ConfigError(ValueError):
    """A setting in the environment is malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Worker settings, read once from the environment."""

    broker: str = "kafka://127.0.0.1:9092"
    clock: str = "wall"
    partitions: int = 8
    data_dir: Path = field(default_factory=lambda: Path("data"))
    rules_path: Optional[Path] = None
    web_port: int = 6066
    broker_compat: str = "auto"
    pii_salt: str = DEV_SALT
    log_level: str = "info"
    app_id: str = "shipguard"
    store: str = "memory"
    max_message_bytes: int = 262_144

    @property
    def bootstrap_servers(self) -> list[str]:
        """Broker URLs as host:port pairs, for plain Kafka clients."""
        return [strip_scheme(url) for url in self.broker.split(",") if url.strip()]


def strip_scheme(url: str) -> str:
    """`kafka://host:port` -> `host:port`."""
    url = url.strip()
    return url.split("://", 1)[1] if "://" in url else url


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value}: expected {low}..{high}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def load_settings(env: Optional[Mapping[str, str]] = None, **overrides: object) -> Settings:
    """Read Settings from `env` (default: os.environ); keyword overrides win (CLI flags)."""
    env = os.environ if env is None else env
    broker = env.get("SHIPGUARD_BROKER") or "kafka://127.0.0.1:9092"
    rules = env.get("SHIPGUARD_RULES")
    values: dict[str, object] = dict(
        broker=broker,
        clock=_choice(env, "SHIPGUARD_CLOCK", "wall", ("wall", "event")),
        partitions=_int(env, "SHIPGUARD_PARTITIONS", 8, 1, 1024),
        data_dir=Path(env.get("SHIPGUARD_DATA_DIR") or "data"),
        rules_path=Path(rules) if rules else None,
        web_port=_int(env, "SHIPGUARD_WEB_PORT", 6066, 1, 65535),
        broker_compat=_choice(env, "SHIPGUARD_BROKER_COMPAT", "auto", ("auto", "embedded", "kafka")),
        pii_salt=env.get("SHIPGUARD_PII_SALT") or DEV_SALT,
        log_level=_choice(env, "SHIPGUARD_LOG_LEVEL", "info",
                          ("debug", "info", "warning", "warn", "error", "critical")),
        app_id=env.get("SHIPGUARD_APP_ID") or "shipguard",
        store=_choice(env, "SHIPGUARD_STORE", "memory", ("memory", "rocksdb")),
        max_message_bytes=_int(env, "SHIPGUARD_MAX_MESSAGE_BYTES", 262_144, 1_024, 100_000_000),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["clock"] not in ("wall", "event"):
        raise ConfigError(f"--clock {values['clock']!r}: expected wall or event")
    return Settings(**values)  # type: ignore[arg-type]
