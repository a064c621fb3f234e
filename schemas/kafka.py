"""Kafka client security, one block for every process that talks to the brokers (worker, feedback process).

Kept beside the topic contract so that both Faust apps read the same ``TRIAGE_KAFKA__*`` variables and build
their credentials one way; ``faust`` is imported only when credentials are built.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = ["KafkaSecuritySettings", "kafka_credentials"]


class KafkaSecuritySettings(BaseModel):
    """Kafka client security, passed through to the consumer, producer and admin clients."""

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How the process connects to the brokers.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism for SASL_PLAINTEXT / SASL_SSL.")
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle that signed the brokers' certificates.")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    ssl_keyfile: Path | None = Field(default=None, description="Private key (PEM) of the client certificate.")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecuritySettings:
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs TRIAGE_KAFKA__SASL_USERNAME and "
                "TRIAGE_KAFKA__SASL_PASSWORD"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("set both TRIAGE_KAFKA__SSL_CERTFILE and TRIAGE_KAFKA__SSL_KEYFILE, or neither")
        return self


def kafka_credentials(kafka: KafkaSecuritySettings) -> CredentialsT | None:
    """Faust credentials for the configured protocol (None for PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials

    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
        if kafka.ssl_certfile and kafka.ssl_keyfile:
            context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile))
    if kafka.security_protocol == "SSL":
        return SSLCredentials(context)
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return SASLCredentials(
            username=kafka.sasl_username, password=password, ssl_context=context, mechanism=kafka.sasl_mechanism
        )
    return None
