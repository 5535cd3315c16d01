"""TLS and SASL settings come from the environment, are checked as a whole, and become the same
client keywords for aiokafka, kafka-python and Faust. The password never shows."""

import ssl
import subprocess
from pathlib import Path

import pytest

from streams.config import ENV_VARS, SECURITY_ENV_VARS, ConfigError, Settings, load_settings
from streams.kafka import security

OPENSSL = "/usr/bin/openssl"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A throwaway CA, and a client certificate and key it signed (PEM)."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=shipguard unit CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=worker",
        "-keyout", str(d / "client.key"), "-out", str(d / "client.csr"))
    run("x509", "-req", "-in", str(d / "client.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-days", "1", "-out", str(d / "client.pem"))
    run("pkey", "-in", str(d / "client.key"), "-out", str(d / "client-locked.key"), "-aes256", "-passout", "pass:pw")
    (d / "garbage.pem").write_text("not a certificate\n")
    return {name: d / name for name in ("ca.pem", "client.pem", "client.key", "client-locked.key", "garbage.pem")}


def env(**values: object) -> dict[str, str]:
    return {f"SHIPGUARD_{k.upper()}": str(v) for k, v in values.items()}


SCRAM = env(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="worker",
            sasl_password="s3cret-pw")


# -- settings -----------------------------------------------------------------------------------


def test_without_security_variables_clients_talk_plaintext_and_get_no_keywords():
    settings = load_settings({})
    assert settings.security_protocol == "PLAINTEXT" and not settings.uses_tls and not settings.uses_sasl
    assert security.aiokafka_kwargs(settings) == security.kafka_python_kwargs(settings) == {}
    assert security.faust_app_kwargs(settings) == {}


def test_every_security_variable_is_one_the_config_module_reads_and_documents():
    import streams.config

    assert set(SECURITY_ENV_VARS) <= set(ENV_VARS)
    for name in SECURITY_ENV_VARS:
        assert f"| {name} |" in streams.config.__doc__


def test_protocol_and_mechanism_are_read_in_any_case():
    settings = load_settings(env(security_protocol="sasl_plaintext", sasl_mechanism="scram-sha-256",
                                 sasl_username="u", sasl_password="p"))
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")


def test_the_password_and_the_salt_never_show_in_the_settings_repr():
    settings = load_settings({**SCRAM, "SHIPGUARD_PII_SALT": "salty-secret"})
    assert settings.sasl_password == "s3cret-pw"
    assert "s3cret-pw" not in repr(settings) and "salty-secret" not in repr(settings)
    assert "s3cret-pw" not in security.describe(settings)


@pytest.mark.parametrize("values, message", [
    (env(security_protocol="TLS"),
     "SHIPGUARD_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    (env(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_password="p"),
     "SHIPGUARD_SASL_USERNAME is required with SHIPGUARD_SECURITY_PROTOCOL=SASL_SSL"),
    (env(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u"),
     "SHIPGUARD_SASL_PASSWORD is required with SHIPGUARD_SECURITY_PROTOCOL=SASL_PLAINTEXT"),
    (env(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p"),
     "SHIPGUARD_SASL_MECHANISM is required with SHIPGUARD_SECURITY_PROTOCOL=SASL_SSL: "
     "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    (env(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI", sasl_username="u", sasl_password="p"),
     "SHIPGUARD_SASL_MECHANISM='GSSAPI': expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    (env(security_protocol="SSL", ssl_cafile="/nowhere/ca.pem"),
     "SHIPGUARD_SSL_CAFILE='/nowhere/ca.pem': no such file"),
    (env(sasl_username="u"),
     "SHIPGUARD_SASL_USERNAME is set but SHIPGUARD_SECURITY_PROTOCOL=PLAINTEXT does not use SASL"),
    (env(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p",
         ssl_cafile="/etc/hostname"),
     "SHIPGUARD_SSL_CAFILE is set but SHIPGUARD_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS"),
])
def test_a_combination_that_does_not_fit_is_refused_and_the_message_names_the_variable(values, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(values)
    assert message in str(caught.value)


def test_a_ca_file_with_plaintext_is_refused_rather_than_talking_in_the_clear(pki):
    with pytest.raises(ConfigError, match="SHIPGUARD_SSL_CAFILE is set but SHIPGUARD_SECURITY_PROTOCOL=PLAINTEXT"):
        load_settings(env(ssl_cafile=pki["ca.pem"]))


def test_a_client_key_without_its_certificate_is_refused(pki):
    with pytest.raises(ConfigError, match="SHIPGUARD_SSL_KEYFILE is set without SHIPGUARD_SSL_CERTFILE"):
        load_settings(env(security_protocol="SSL", ssl_keyfile=pki["client.key"]))


def test_a_file_that_is_not_a_certificate_is_refused_when_the_context_is_built(pki):
    settings = load_settings(env(security_protocol="SSL", ssl_cafile=pki["garbage.pem"]))
    with pytest.raises(ConfigError, match="SHIPGUARD_SSL_CAFILE=.*garbage.pem.*not a PEM CA certificate"):
        security.kafka_python_kwargs(settings)
    settings = load_settings(env(security_protocol="SSL", ssl_certfile=pki["garbage.pem"]))
    with pytest.raises(ConfigError, match="SHIPGUARD_SSL_CERTFILE=.*garbage.pem"):
        security.aiokafka_kwargs(settings)


def test_an_encrypted_client_key_is_refused_instead_of_prompting_for_its_passphrase(pki):
    settings = load_settings(env(security_protocol="SSL", ssl_certfile=pki["client.pem"],
                                 ssl_keyfile=pki["client-locked.key"]))
    with pytest.raises(ConfigError, match="the client key is encrypted"):
        security.aiokafka_kwargs(settings)


def test_settings_built_in_code_are_checked_as_well():
    with pytest.raises(ConfigError, match="SHIPGUARD_SASL_USERNAME is required"):
        security.aiokafka_kwargs(Settings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_password="p"))


# -- client keywords ----------------------------------------------------------------------------


def test_ssl_gives_a_verifying_context_with_only_our_ca(pki):
    kwargs = security.kafka_python_kwargs(load_settings(env(security_protocol="SSL", ssl_cafile=pki["ca.pem"])))
    assert set(kwargs) == {"security_protocol", "ssl_context"} and kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "shipguard unit CA"),),)]


def test_ssl_without_a_ca_file_trusts_the_system_cas():
    context = security.aiokafka_kwargs(load_settings(env(security_protocol="SSL")))["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_client_certificate_is_loaded_into_the_context(pki):
    settings = load_settings(env(security_protocol="SSL", ssl_cafile=pki["ca.pem"], ssl_certfile=pki["client.pem"],
                                 ssl_keyfile=pki["client.key"]))
    assert security.aiokafka_kwargs(settings)["security_protocol"] == "SSL"
    assert "client certificate" in security.describe(settings)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_gives_the_mechanism_and_credentials_and_a_context_only_over_tls(protocol, mechanism):
    settings = load_settings(env(security_protocol=protocol, sasl_mechanism=mechanism, sasl_username="worker",
                                 sasl_password="s3cret-pw"))
    for kwargs in (security.aiokafka_kwargs(settings), security.kafka_python_kwargs(settings)):
        context = kwargs.pop("ssl_context", None)
        assert (context is not None) == (protocol == "SASL_SSL")
        assert kwargs == {"security_protocol": protocol, "sasl_mechanism": mechanism,
                          "sasl_plain_username": "worker", "sasl_plain_password": "s3cret-pw"}


def test_the_keywords_are_accepted_by_every_client_class_of_both_libraries(pki):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaConsumer, KafkaProducer

    settings = load_settings({**SCRAM, "SHIPGUARD_SSL_CAFILE": str(pki["ca.pem"])})
    # Constructing does not connect; a keyword either library did not know would raise here.
    kwargs = security.kafka_python_kwargs(settings)
    KafkaProducer(bootstrap_servers=["127.0.0.1:1"], api_version=(3, 0), **kwargs).close()
    KafkaConsumer(bootstrap_servers=["127.0.0.1:1"], api_version=(3, 0), **kwargs).close()

    import asyncio

    async def build() -> None:
        AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **security.aiokafka_kwargs(settings))
        AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **security.aiokafka_kwargs(settings))

    asyncio.run(build())


# -- Faust --------------------------------------------------------------------------------------


def test_faust_gets_ssl_credentials_that_become_the_same_aiokafka_keywords(pki):
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = load_settings(env(security_protocol="SSL", ssl_cafile=pki["ca.pem"]))
    credentials = security.faust_app_kwargs(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL" and auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_gets_sasl_credentials_with_a_context_exactly_when_over_tls(protocol):
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = load_settings({**SCRAM, "SHIPGUARD_SECURITY_PROTOCOL": protocol})
    credentials = security.faust_app_kwargs(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert "s3cret-pw" not in repr(credentials)
    auth = credentials_to_aiokafka_auth(credentials)
    context = auth.pop("ssl_context")
    assert (context is not None) == (protocol == "SASL_SSL")
    assert auth == {"security_protocol": protocol, "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "worker", "sasl_plain_password": "s3cret-pw"}


def test_a_faust_app_built_with_the_credentials_carries_them():
    import faust

    settings = load_settings({**SCRAM, "SHIPGUARD_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    app = faust.App("security-unit", broker="kafka://127.0.0.1:1", **security.faust_app_kwargs(settings))
    assert app.conf.broker_credentials.username == "worker"
    assert app.conf.broker_credentials.mechanism.value == "SCRAM-SHA-512"


def test_the_plaintext_environment_overrides_every_security_variable_of_a_shell(pki):
    shell = {**SCRAM, "SHIPGUARD_SSL_CAFILE": str(pki["ca.pem"])}
    settings = load_settings({**shell, **security.PLAINTEXT_ENV})
    assert settings.security_protocol == "PLAINTEXT" and security.kafka_python_kwargs(settings) == {}
