"""Kafka client security settings (TLS, SASL), given once and passed to both client backends.

The settings are named as librdkafka names them (the names of the Java client and of most
Kafka tools): `security.protocol`, `ssl.*`, `sasl.*`. The confluent backend takes them as
they are; kafka-python's clients (the default backend, the journal, topic creation) take
the same settings under their own keyword names, translated here. A setting kafka-python has
no keyword for is refused with a message naming it, rather than dropped.

    security.protocol                      PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    ssl.ca.location                        CA bundle (PEM) that signs the broker's certificate
    ssl.certificate.location               client certificate (PEM), for mutual TLS
    ssl.key.location / ssl.key.password    client private key (PEM) and its password
    ssl.crl.location                       certificate revocation list
    ssl.cipher.suites                      allowed ciphers (OpenSSL syntax)
    ssl.endpoint.identification.algorithm  https (check the host name, default) | none
    sasl.mechanism (or sasl.mechanisms)    PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 | GSSAPI | ...
    sasl.username / sasl.password          PLAIN and SCRAM credentials
    sasl.kerberos.service.name             GSSAPI
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason

PREFIXES = ("ssl.", "sasl.")
NAMES = ("security.protocol",)
KAFKA_PYTHON_NAMES = {
    "security.protocol": "security_protocol",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "ssl.crl.location": "ssl_crlfile",
    "ssl.cipher.suites": "ssl_ciphers",
    "ssl.endpoint.identification.algorithm": "ssl_check_hostname",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "sasl.kerberos.service.name": "sasl_kerberos_service_name",
}
SECRET_WORDS = ("password", "secret", "token")


def check(settings: Mapping[str, str]) -> dict[str, str]:
    """The settings, refusing names that are not security settings."""
    for name in settings:
        if name not in NAMES and not name.startswith(PREFIXES):
            raise Rejected(
                RejectReason.UNSUPPORTED_OPTION,
                f"Kafka setting {name!r}: only security.protocol, ssl.* and sasl.* pass through",
            )
    return {name: str(value) for name, value in settings.items()}


def for_confluent(settings: Mapping[str, str]) -> dict[str, str]:
    """librdkafka configuration entries (the names as given)."""
    return check(settings)


def for_kafka_python(settings: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python keyword arguments for KafkaConsumer, KafkaProducer, KafkaAdminClient."""
    out: dict[str, Any] = {}
    for name, value in check(settings).items():
        keyword = KAFKA_PYTHON_NAMES.get(name)
        if keyword is None:
            raise Rejected(
                RejectReason.UNSUPPORTED_OPTION,
                f"Kafka setting {name!r} has no kafka-python equivalent: use --backend confluent",
            )
        if keyword == "ssl_check_hostname":
            out[keyword] = value.lower() != "none"
        else:
            out[keyword] = value
    return out


def redacted(settings: Mapping[str, str]) -> dict[str, str]:
    """For logs: secrets replaced by ***."""
    return {
        k: ("***" if any(w in k for w in SECRET_WORDS) else v) for k, v in sorted(settings.items())
    }
