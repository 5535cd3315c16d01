"""Kafka client security: the one place that turns Settings (SHIPGUARD_SECURITY_PROTOCOL,
SHIPGUARD_SSL_*, SHIPGUARD_SASL_*) into arguments for each client library shipguard uses.

| client | function |
|---|---|
| aiokafka: AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient | `aiokafka_kwargs` |
| kafka-python: KafkaProducer, KafkaConsumer, KafkaAdminClient | `kafka_python_kwargs` |
| the Faust App (its producer, consumer and topic creation) | `faust_app_kwargs` |

Both libraries take the same keywords (security_protocol, ssl_context, sasl_mechanism,
sasl_plain_username, sasl_plain_password; SCRAM uses the "plain" username and password keywords
too) and use an `ssl_context` exactly as given, so both get one context built by `ssl_context`:
TLS 1.2 or later, the broker's certificate verified against SHIPGUARD_SSL_CAFILE (or the system
CAs when it is unset) and its host name checked. PLAINTEXT gives no keywords at all, so a client
behaves exactly as it did before these settings existed.

The password goes into these dicts and nowhere else: `describe` is what may be logged.
"""

from __future__ import annotations

import ssl
from typing import Any, NoReturn

from streams.config import SECURITY_ENV_VARS, ConfigError, Settings, check_security

#: Environment for a process that must talk PLAINTEXT whatever the caller's shell says (the
#: demo's worker, on the demo's own embedded broker). Empty values count as unset.
PLAINTEXT_ENV: dict[str, str] = {**{name: "" for name in SECURITY_ENV_VARS},
                                 "SHIPGUARD_SECURITY_PROTOCOL": "PLAINTEXT"}


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context for SSL and SASL_SSL (None otherwise); ConfigError names a bad file."""
    check_security(settings)
    if not settings.uses_tls:
        return None
    cafile = settings.ssl_cafile
    try:
        # Purpose.SERVER_AUTH: CERT_REQUIRED and check_hostname on; a CA file replaces the system CAs.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"SHIPGUARD_SSL_CAFILE={str(cafile)!r}: not a PEM CA certificate ({exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ssl_certfile is not None:
        keyfile = settings.ssl_keyfile
        try:
            context.load_cert_chain(str(settings.ssl_certfile), str(keyfile) if keyfile else None,
                                    password=_no_key_password)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"SHIPGUARD_SSL_CERTFILE={str(settings.ssl_certfile)!r}"
                + (f" with SHIPGUARD_SSL_KEYFILE={str(keyfile)!r}" if keyfile else "")
                + f": not a PEM certificate and its unencrypted private key ({exc})"
            ) from None
    return context


def _no_key_password() -> NoReturn:
    # Without a password callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ConfigError("the client key is encrypted: shipguard reads an unencrypted PEM key "
                      "(SHIPGUARD_SSL_KEYFILE or inside SHIPGUARD_SSL_CERTFILE)")


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    context = ssl_context(settings)  # checks the settings first
    if settings.security_protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.uses_sasl:
        kwargs.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password)
    return kwargs


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Security keywords for an aiokafka producer, consumer or admin client ({} for PLAINTEXT)."""
    return _client_kwargs(settings)


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """Security keywords for a kafka-python producer, consumer or admin client ({} for PLAINTEXT).

    The same keywords as aiokafka's: kafka-python also takes a ready `ssl_context`, and then
    ignores its own ssl_cafile/ssl_certfile/ssl_check_hostname, so both libraries verify alike.
    """
    return _client_kwargs(settings)


def faust_app_kwargs(settings: Settings) -> dict[str, Any]:
    """`{"broker_credentials": ...}` for `faust.App` ({} for PLAINTEXT).

    Faust expresses SASL over TLS as SASLCredentials with an ssl_context (its protocol is then
    SASL_SSL), and TLS alone as SSLCredentials; `credentials_to_aiokafka_auth` in Faust's
    aiokafka driver turns either into the same keywords as `aiokafka_kwargs`.
    """
    import faust  # here: replay and the admin helpers should not pay for importing Faust

    context = ssl_context(settings)
    if settings.security_protocol == "PLAINTEXT":
        return {}
    if settings.security_protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {"broker_credentials": faust.SASLCredentials(
        username=settings.sasl_username, password=settings.sasl_password,
        mechanism=settings.sasl_mechanism, ssl_context=context)}


def describe(settings: Settings) -> str:
    """The security settings in one loggable phrase, without the password."""
    parts = [settings.security_protocol]
    if settings.uses_sasl:
        parts.append(f"{settings.sasl_mechanism} as {settings.sasl_username!r}")
    if settings.uses_tls:
        parts.append(f"CA {settings.ssl_cafile}" if settings.ssl_cafile else "system CAs")
        if settings.ssl_certfile is not None:
            parts.append(f"client certificate {settings.ssl_certfile}")
    return ", ".join(parts)
