"""One path from the security settings to Kafka clients: the TLS context and aiokafka's
keyword arguments (faust's credentials, built from the same context, are in
``faust_transport.faust_credentials``).

``STREAM_REC_SECURITY_PROTOCOL`` is ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or
``SASL_SSL``; ``STREAM_REC_SASL_*`` and ``STREAM_REC_SSL_*`` fill in the rest.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from stream_rec.config import Settings

__all__ = ["client_security_kwargs", "ssl_context"]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for ``SSL`` and ``SASL_SSL`` (CA, client cert and key if set), or None."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(cafile=settings.ssl_cafile or None,
                                                 certfile=settings.ssl_certfile or None,
                                                 keyfile=settings.ssl_keyfile or None)
    return context


def client_security_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka client keyword arguments for the security fields of ``settings``."""
    protocol = settings.security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username or None
        kwargs["sasl_plain_password"] = settings.sasl_password or None
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    return kwargs
