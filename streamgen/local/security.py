"""The secure local broker (`streamgen dev up --secure`): who may connect, and as what.

::

    client listener   SASL_PLAINTEXT + SCRAM-SHA-512   users: worker, producer, admin, and
                                                       broker (inter-broker, a super user)
    TLS listener      SASL_SSL + SCRAM-SHA-512         the same users, over TLS with a
                                                       certificate from the stack's own CA
    controller        SASL_PLAINTEXT + PLAIN           user: controller (a super user)
    authorizer        StandardAuthorizer, allow.everyone.if.no.acl.found=false

SCRAM credentials live in the cluster metadata, so the first ones are written when the storage
is formatted (``kafka-storage format --add-scram``); the controller listener cannot use SCRAM
(a controller must authenticate before any metadata exists), hence PLAIN with a static JAAS
user there. ``admin`` is a super user too: it creates topics and grants the ACLs
(:mod:`streamgen.local.acls`); ``worker`` and ``producer`` get only those ACLs.

The TLS listener's certificate is signed by a CA generated for the state dir
(:mod:`streamgen.local.tls`); clients trust it with ``ssl.ca.location``. Every password (the
keystore's too) is random per state dir, kept in ``state.json`` (mode 0600) and meant for
development only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from streamgen.local.tls import BrokerTls

__all__ = [
    "CLIENT_USERS",
    "SCRAM_MECHANISM",
    "KafkaSecurity",
    "new_passwords",
]

SCRAM_MECHANISM = "SCRAM-SHA-512"
CLIENT_USERS = ("worker", "producer", "admin")
_SERVER_USERS = ("broker", "controller")
# Not a user: the password of the broker's PKCS#12 keystore, kept with the others.
KEYSTORE = "keystore"
_SUPER_USERS = ("broker", "controller", "admin")
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def new_passwords() -> dict[str, str]:
    """One random password per user; URL-safe, so no quoting is needed in JAAS or
    ``kafka.client_config`` (which splits on ``,``)."""
    names = (*_SERVER_USERS, *CLIENT_USERS, KEYSTORE)
    return {name: secrets.token_urlsafe(18) for name in names}


@dataclass(frozen=True)
class KafkaSecurity:
    passwords: dict[str, str]
    # The TLS listener's CA and keystore; None for a state dir made before it existed.
    tls: BrokerTls | None = None

    def client_config(self, user: str, *, tls: bool = False) -> dict[str, str]:
        """The librdkafka settings a client of the local broker needs to log in as ``user``;
        with ``tls``, for the TLS listener, verifying its certificate against the stack's CA."""
        login = {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": self.passwords[user],
        }
        if not tls:
            return login
        if self.tls is None:
            raise ValueError("this secure stack was made without a TLS listener")
        return {**login, "security.protocol": "SASL_SSL", "ssl.ca.location": str(self.tls.ca_file)}

    def server_properties(self, client: str, controller: str, tls: str = "") -> dict[str, str]:
        """The broker settings that replace the plaintext listeners (``client``, ``controller``
        and ``tls``, the TLS listener's when there is one, are host:port)."""
        broker_password = self.passwords["broker"]
        controller_password = self.passwords["controller"]
        scram_login = f'{_SCRAM_MODULE} required username="broker" password="{broker_password}";'
        listeners = [f"SASL_PLAINTEXT://{client}"]
        extra: dict[str, str] = {}
        if tls and self.tls is not None:
            listeners.append(f"SASL_SSL://{tls}")
            extra = {
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram_login,
                **self.tls.server_properties(),
            }
        return {
            "listeners": ",".join([*listeners, f"CONTROLLER://{controller}"]),
            "advertised.listeners": ",".join(listeners),
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": (
                "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram_login,
            **extra,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            # The controller's login (username/password) and the one user it accepts.
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{_PLAIN_MODULE} required username="controller" '
                f'password="{controller_password}" user_controller="{controller_password}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # Deny what no ACL allows: a topic nobody granted is closed, not open.
            "allow.everyone.if.no.acl.found": "false",
            "super.users": ";".join(f"User:{user}" for user in _SUPER_USERS),
        }

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments writing every SCRAM user into the metadata."""
        arguments = []
        for user in ("broker", *CLIENT_USERS):
            password = self.passwords[user]
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        return arguments
