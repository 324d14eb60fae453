"""One security path: aiokafka keyword arguments and faust credentials from Settings."""

from __future__ import annotations

import ssl

import faust

from stream_rec.broker.faust_transport import faust_credentials
from stream_rec.broker.security import client_security_kwargs
from stream_rec.config import Settings


def test_plaintext_security_kwargs_name_only_the_protocol() -> None:
    assert client_security_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_security_kwargs_carry_credentials_and_an_ssl_context() -> None:
    settings = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password="secret",
    )

    kwargs = client_security_kwargs(settings)

    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "secret",
    }


def test_faust_gets_no_credentials_for_plaintext_and_sasl_over_the_same_tls_context() -> None:
    assert faust_credentials(Settings()) is None
    creds = faust_credentials(Settings(security_protocol="SASL_SSL", sasl_username="alice",
                                       sasl_password="secret", sasl_mechanism="PLAIN"))
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "alice" and isinstance(creds.ssl_context, ssl.SSLContext)


def test_faust_gets_ssl_credentials_for_ssl() -> None:
    creds = faust_credentials(Settings(security_protocol="SSL"))
    assert isinstance(creds, faust.SSLCredentials)
    assert isinstance(creds.context, ssl.SSLContext)
