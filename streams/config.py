"""The one place that reads the environment. Every setting has a local default.

| variable | default | meaning |
|---|---|---|
| SHIPGUARD_BROKER | kafka://127.0.0.1:9092 | bootstrap URL(s), comma separated |
| SHIPGUARD_CLOCK | wall | `wall` (deadlines fire by the wall clock) or `event` (stream time from events) |
| SHIPGUARD_PARTITIONS | 8 | partitions of every topic shipguard creates |
| SHIPGUARD_DATA_DIR | ./data | worker data (table stores) |
| SHIPGUARD_RULES | (packaged defaults) | path to a rules TOML file with the thresholds |
| SHIPGUARD_WEB_PORT | 6066 | the worker's web server port |
| SHIPGUARD_WEB_HOST | 127.0.0.1 | the address it listens on; `0.0.0.0` for probes from outside (never public) |
| SHIPGUARD_BROKER_COMPAT | auto | `auto` detects the embedded broker; `embedded` or `kafka` forces it |
| SHIPGUARD_PII_SALT | (dev salt) | salt for hashing recipients; set a secret one in production |
| SHIPGUARD_LOG_LEVEL | info | worker log level |
| SHIPGUARD_APP_ID | shipguard | Faust app id: consumer group and internal topic prefix |
| SHIPGUARD_MAX_MESSAGE_BYTES | 262144 | a larger input record goes to dead-letters unread |
| SHIPGUARD_SESSION_TIMEOUT_S | 10 embedded, 60 Kafka | how long a silent worker keeps its partitions (6-300 s) |
| SHIPGUARD_TRANSACTIONS | off | `on`: Kafka transactions per batch and partition (Apache Kafka only; unfinished) |
| SHIPGUARD_STORE | memory | `memory` (rebuilt from the changelogs at start) or `rocksdb` (on disk, data dir) |
| SHIPGUARD_SECURITY_PROTOCOL | PLAINTEXT | `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` |
| SHIPGUARD_SSL_CAFILE | (system CAs) | PEM file of the CA(s) that signed the broker's certificate (SSL, SASL_SSL) |
| SHIPGUARD_SSL_CERTFILE | (none) | PEM client certificate, for brokers that ask for one (SSL, SASL_SSL) |
| SHIPGUARD_SSL_KEYFILE | (none) | PEM private key of the client certificate, if not in the certificate file |
| SHIPGUARD_SASL_MECHANISM | (none) | `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; required with SASL_* |
| SHIPGUARD_SASL_USERNAME | (none) | SASL user; required with SASL_* |
| SHIPGUARD_SASL_PASSWORD | (none) | SASL password; required with SASL_*; never logged nor shown in Settings' repr |

TLS always verifies the broker's certificate and host name. `streams/kafka/security.py` turns these
into client arguments; `check_security` says what is wrong with a combination, naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SECURITY_ENV_VARS = (
    "SHIPGUARD_SECURITY_PROTOCOL", "SHIPGUARD_SSL_CAFILE", "SHIPGUARD_SSL_CERTFILE", "SHIPGUARD_SSL_KEYFILE",
    "SHIPGUARD_SASL_MECHANISM", "SHIPGUARD_SASL_USERNAME", "SHIPGUARD_SASL_PASSWORD",
)
ENV_VARS = (
    "SHIPGUARD_BROKER", "SHIPGUARD_CLOCK", "SHIPGUARD_PARTITIONS", "SHIPGUARD_DATA_DIR",
    "SHIPGUARD_RULES", "SHIPGUARD_WEB_PORT", "SHIPGUARD_WEB_HOST", "SHIPGUARD_BROKER_COMPAT", "SHIPGUARD_PII_SALT",
    "SHIPGUARD_LOG_LEVEL", "SHIPGUARD_APP_ID", "SHIPGUARD_STORE", "SHIPGUARD_MAX_MESSAGE_BYTES",
    "SHIPGUARD_SESSION_TIMEOUT_S", "SHIPGUARD_TRANSACTIONS",
) + SECURITY_ENV_VARS

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

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
    rules_path: Path | None = None
    web_port: int = 6066
    web_host: str = "127.0.0.1"  # what the web port listens on (Faust's web_bind)
    broker_compat: str = "auto"
    pii_salt: str = field(default=DEV_SALT, repr=False)  # secret in production
    log_level: str = "info"
    app_id: str = "shipguard"
    store: str = "memory"
    max_message_bytes: int = 262_144
    session_timeout_s: int | None = None  # None: the broker kind's default (streams.kafka.compat (d))
    transactions: str = "off"  # on: Kafka transactions per batch (unfinished: docs/delivery.md)
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)  # secret: never in a log line

    @property
    def bootstrap_servers(self) -> list[str]:
        """Broker URLs as host:port pairs, for plain Kafka clients."""
        return [strip_scheme(url) for url in self.broker.split(",") if url.strip()]

    @property
    def uses_tls(self) -> bool:
        """True when clients reach Kafka over TLS (SSL, SASL_SSL)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """True when clients authenticate with SASL (SASL_PLAINTEXT, SASL_SSL)."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


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


def _choice(env: Mapping[str, str], name: str, default: str | None, choices: tuple[str, ...],
            upper: bool = False) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
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
        web_host=(env.get("SHIPGUARD_WEB_HOST") or "127.0.0.1").strip(),
        broker_compat=_choice(env, "SHIPGUARD_BROKER_COMPAT", "auto", ("auto", "embedded", "kafka")),
        pii_salt=env.get("SHIPGUARD_PII_SALT") or DEV_SALT,
        log_level=_choice(env, "SHIPGUARD_LOG_LEVEL", "info",
                          ("debug", "info", "warning", "warn", "error", "critical")),
        app_id=env.get("SHIPGUARD_APP_ID") or "shipguard",
        store=_choice(env, "SHIPGUARD_STORE", "memory", ("memory", "rocksdb")),
        max_message_bytes=_int(env, "SHIPGUARD_MAX_MESSAGE_BYTES", 262_144, 1_024, 100_000_000),
        # Kafka's group.min.session.timeout.ms is 6 s; heartbeats go every 3 s
        session_timeout_s=(_int(env, "SHIPGUARD_SESSION_TIMEOUT_S", 60, 6, 300)
                           if (env.get("SHIPGUARD_SESSION_TIMEOUT_S") or "").strip() else None),
        transactions=_choice(env, "SHIPGUARD_TRANSACTIONS", "off", ("off", "on")),
        security_protocol=_choice(env, "SHIPGUARD_SECURITY_PROTOCOL", "PLAINTEXT", SECURITY_PROTOCOLS, upper=True),
        ssl_cafile=_path(env, "SHIPGUARD_SSL_CAFILE"),
        ssl_certfile=_path(env, "SHIPGUARD_SSL_CERTFILE"),
        ssl_keyfile=_path(env, "SHIPGUARD_SSL_KEYFILE"),
        sasl_mechanism=_choice(env, "SHIPGUARD_SASL_MECHANISM", None, SASL_MECHANISMS, upper=True),
        sasl_username=env.get("SHIPGUARD_SASL_USERNAME") or None,
        sasl_password=env.get("SHIPGUARD_SASL_PASSWORD") or None,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["clock"] not in ("wall", "event"):
        raise ConfigError(f"--clock {values['clock']!r}: expected wall or event")
    settings = Settings(**values)  # type: ignore[arg-type]  # one value per field, each parsed and checked above
    check_security(settings)
    return settings


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = (env.get(name) or "").strip()
    return Path(raw).expanduser() if raw else None


def check_security(settings: Settings) -> None:
    """Raise ConfigError, naming the variable, when the TLS and SASL settings do not fit together.

    A setting that the chosen protocol would ignore is an error, not a silent no-op: a CA file
    with PLAINTEXT, say, means the protocol was forgotten, and the client would talk in the clear.
    """
    protocol = settings.security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"SHIPGUARD_SECURITY_PROTOCOL={protocol!r}: expected one of {', '.join(SECURITY_PROTOCOLS)}")
    tls, sasl = settings.uses_tls, settings.uses_sasl
    files = {"SHIPGUARD_SSL_CAFILE": settings.ssl_cafile, "SHIPGUARD_SSL_CERTFILE": settings.ssl_certfile,
             "SHIPGUARD_SSL_KEYFILE": settings.ssl_keyfile}
    for name, path in files.items():
        if path is None:
            continue
        if not tls:
            raise ConfigError(f"{name} is set but SHIPGUARD_SECURITY_PROTOCOL={protocol} does not use TLS: "
                              "set SHIPGUARD_SECURITY_PROTOCOL=SSL (or SASL_SSL), or unset it")
        if not Path(path).is_file():
            raise ConfigError(f"{name}={str(path)!r}: no such file")
    if settings.ssl_keyfile is not None and settings.ssl_certfile is None:
        raise ConfigError("SHIPGUARD_SSL_KEYFILE is set without SHIPGUARD_SSL_CERTFILE: "
                          "a client key needs its certificate")
    sasl_values = {"SHIPGUARD_SASL_MECHANISM": settings.sasl_mechanism,
                   "SHIPGUARD_SASL_USERNAME": settings.sasl_username,
                   "SHIPGUARD_SASL_PASSWORD": settings.sasl_password}
    for name, value in sasl_values.items():
        if sasl and not value:
            hint = f": one of {', '.join(SASL_MECHANISMS)}" if name == "SHIPGUARD_SASL_MECHANISM" else ""
            raise ConfigError(f"{name} is required with SHIPGUARD_SECURITY_PROTOCOL={protocol}{hint}")
        if not sasl and value:
            raise ConfigError(f"{name} is set but SHIPGUARD_SECURITY_PROTOCOL={protocol} does not use SASL: "
                              "set SHIPGUARD_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT), or unset it")
    if settings.sasl_mechanism is not None and settings.sasl_mechanism not in SASL_MECHANISMS:
        raise ConfigError(f"SHIPGUARD_SASL_MECHANISM={settings.sasl_mechanism!r}: "
                          f"expected one of {', '.join(SASL_MECHANISMS)}")
