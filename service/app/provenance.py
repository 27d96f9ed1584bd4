"""Proof of origin for messages this service writes and later reads back: dead letters, and the
commands an operator replays from them.

Anyone allowed to produce to a topic can write any bytes with any headers, so a header the
service reads back is only worth something if it carries an HMAC the service made (with a
signing key of its own, kept wrapped by the master key; see ARCHITECTURE.md, "Trust
boundaries"):

- A dead letter is signed over its topic, key, value and every header before the signature, so
  a letter injected into a `.dlq` topic, or a real one altered or moved to another topic, fails.
- A letter records the authority its command was admitted with (the verified claims, or none);
  a replay carries that authority, signed together with the exact command it belongs to, so a
  replay never grants more than the original sender had, and a header copied onto another
  command grants nothing.

Pure: standard library only, no I/O; the key comes from whoever builds the Signer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from contracts.headers import (
    DEAD_LETTER_SIGNATURE,
    REPLAY_AUTHORITY,
    REPLAY_SIGNATURE,
    REPLAYED_FROM,
)
from service.app.incoming import IncomingMessage
from service.app.ports import Claims, OutboxMessage
from service.domain.values import frozen

# Purposes are part of what is signed, so a signature made for one kind of message can never
# pass for another kind, even over the same parts.
LETTER_PURPOSE = "dead-letter"
REPLAY_PURPOSE = "replay"

_SEPARATOR = b":"


class Signer:
    """HMAC-SHA256 signatures that name the key they were made with.

    It signs with its newest key and verifies with any it holds: signing keys are replaced when
    the master key is rotated (someone holding an old master key could otherwise still sign),
    and what an earlier key signed stays verifiable while that key is kept.
    """

    def __init__(self, key: bytes, key_id: str, earlier: Mapping[str, bytes] | None = None) -> None:
        keys = {key_id: key, **(earlier or {})}
        for one_id, one in keys.items():
            if len(one) < 16:
                raise ValueError("a signing key needs at least 16 bytes")
            if not one_id or not one_id.isascii() or ":" in one_id:
                raise ValueError("a key id is non-empty ASCII without ':'")
        self._keys = keys
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"  # never the key

    def adopt(self, newer: Signer) -> None:
        """Take another signer's keys: a running service learns of a signing key added since
        it started without anyone who holds this signer noticing."""
        self._keys, self.key_id = dict(newer._keys), newer.key_id

    def sign(self, purpose: str, parts: Sequence[bytes]) -> bytes:
        """A header value: `<key id>:<hex HMAC-SHA256>` over the purpose and the parts."""
        return self.key_id.encode() + _SEPARATOR + self._digest(self.key_id, purpose, parts)

    def verify(self, purpose: str, parts: Sequence[bytes], value: bytes) -> bool:
        """Whether `value` is a signature of one of this signer's keys over exactly these
        parts; False for an unknown key id, a malformed value, anything else."""
        key_id, separator, digest = value.partition(_SEPARATOR)
        try:
            named = key_id.decode("ascii")
        except UnicodeDecodeError:
            return False
        if not separator or named not in self._keys:
            return False
        # Constant time: how much of a forged digest matches must not show in the timing.
        return hmac.compare_digest(digest, self._digest(named, purpose, parts))

    def _digest(self, key_id: str, purpose: str, parts: Sequence[bytes]) -> bytes:
        signed = _encoded(key_id, purpose, parts)
        return hmac.new(self._keys[key_id], signed, hashlib.sha256).hexdigest().encode()


def _encoded(key_id: str, purpose: str, parts: Sequence[bytes]) -> bytes:
    """Every field behind its length, so no two different sequences share an encoding (with
    plain concatenation, key `ab` + value `c` would sign the same as key `a` + value `bc`).
    The key id is signed too, so it cannot be relabelled even where two ids shared a key."""
    fields = (key_id.encode(), purpose.encode(), *parts)
    out = bytearray(len(fields).to_bytes(8, "big"))
    for field_bytes in fields:
        out += len(field_bytes).to_bytes(8, "big")
        out += field_bytes
    return bytes(out)


def _canonical(document: Any) -> bytes:
    # Sorted and compact, and ASCII (JSON escapes), so the same claims always give the same
    # bytes and every header value is plain ASCII.
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def _claims_document(claims: Claims | None) -> dict[str, Any] | None:
    if claims is None:
        return None
    return {
        "subject": claims.subject,
        "issuer": claims.issuer,
        "role": claims.role,
        "tenant": claims.tenant,
        "scopes": sorted(claims.scopes),
        "token_id": claims.token_id,
    }


def _claims_from_document(document: Any) -> Claims | None:
    if document is None:
        return None
    if not isinstance(document, dict) or set(document) != {
        "subject",
        "issuer",
        "role",
        "tenant",
        "scopes",
        "token_id",
    }:
        raise ValueError("authority: not a claims object")
    subject, issuer, role, tenant, scopes, token_id = (
        document["subject"],
        document["issuer"],
        document["role"],
        document["tenant"],
        document["scopes"],
        document["token_id"],
    )
    if not (isinstance(subject, str) and isinstance(issuer, str)):
        raise ValueError("authority: subject and issuer must be strings")
    if not all(v is None or isinstance(v, str) for v in (role, tenant, token_id)):
        raise ValueError("authority: role, tenant and token_id must be strings or null")
    if not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise ValueError("authority: scopes must be a list of strings")
    return Claims(subject, issuer, role, tenant, frozenset(scopes), token_id)


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Repeated member names are refused (I-JSON): two readers must never see two authorities.
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("repeated member name")
    return document


def _parsed(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), object_pairs_hook=_strict_object)


def authority_json(claims: Claims | None) -> bytes:
    """The verified claims a command was admitted with, as canonical JSON; `null` when it was
    not admitted on a token."""
    return _canonical(_claims_document(claims))


def authority_from_json(raw: bytes) -> Claims | None:
    """The claims `authority_json` wrote; raises ValueError for anything else."""
    return _claims_from_document(_parsed(raw))


def _letter_parts(
    topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> list[bytes]:
    # An absent key (or value) and an empty one sign the same: the service writes b"" for
    # "none" in a letter.
    parts = [topic.encode(), key or b"", value or b""]
    for name, header_value in headers:
        parts += [name.encode(), header_value]
    return parts


def signed_letter(signer: Signer, message: OutboxMessage) -> OutboxMessage:
    """The letter with DEAD_LETTER_SIGNATURE appended, covering its topic, key, value and every
    header (name and value, in order) before it."""
    signature = signer.sign(
        LETTER_PURPOSE, _letter_parts(message.topic, message.key, message.value, message.headers)
    )
    return replace(message, headers=(*message.headers, (DEAD_LETTER_SIGNATURE, signature)))


def letter_is_authentic(
    signer: Signer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> bool:
    """Whether the service wrote this letter, as read from `topic`, unaltered: exactly one
    valid signature over everything else."""
    signatures = [v for name, v in headers if name == DEAD_LETTER_SIGNATURE]
    if len(signatures) != 1:
        return False
    rest = [(name, v) for name, v in headers if name != DEAD_LETTER_SIGNATURE]
    return signer.verify(LETTER_PURPOSE, _letter_parts(topic, key, value, rest), signatures[0])


@frozen
class ReplayGrant:
    """What a verified replay header says: where the command was parked, the authority it was
    admitted with (None: none), and which operator replayed it."""

    origin: str
    claims: Claims | None
    replayed_by: str


def _replay_parts(
    commands_topic: str, key: bytes | None, value: bytes, origin: bytes, authority: bytes
) -> list[bytes]:
    return [commands_topic.encode(), key or b"", value, origin, authority]


def replay_headers(
    signer: Signer,
    commands_topic: str,
    key: bytes | None,
    value: bytes,
    origin: str,
    claims: Claims | None,
    replayed_by: str,
) -> list[tuple[str, bytes]]:
    """The headers that make a command on `commands_topic` a replay with this authority: bound
    to its topic, key and value, so they grant nothing on any other command."""
    origin_bytes = origin.encode()
    authority = _canonical({"claims": _claims_document(claims), "replayed_by": replayed_by})
    signature = signer.sign(
        REPLAY_PURPOSE, _replay_parts(commands_topic, key, value, origin_bytes, authority)
    )
    return [
        (REPLAYED_FROM, origin_bytes),
        (REPLAY_AUTHORITY, authority),
        (REPLAY_SIGNATURE, signature),
    ]


def read_replay(signer: Signer, message: IncomingMessage) -> ReplayGrant | None:
    """The replay grant of a consumed command; None when it is no replay, or when its replay
    headers are repeated, missing, malformed or not signed by this service for exactly this
    topic, key and value: then it is an ordinary command, with no replay privileges."""
    found: dict[str, list[bytes]] = {
        REPLAYED_FROM: [],
        REPLAY_AUTHORITY: [],
        REPLAY_SIGNATURE: [],
    }
    for name, value in message.headers:
        if name in found:
            found[name].append(value)
    if not found[REPLAYED_FROM]:
        return None
    if any(len(values) != 1 for values in found.values()):
        return None  # also when one is missing: a grant is all three or nothing
    origin = found[REPLAYED_FROM][0]
    authority = found[REPLAY_AUTHORITY][0]
    signature = found[REPLAY_SIGNATURE][0]
    parts = _replay_parts(message.topic, message.key, message.value or b"", origin, authority)
    if not signer.verify(REPLAY_PURPOSE, parts, signature):
        return None
    try:
        document = _parsed(authority)
        if not isinstance(document, dict) or set(document) != {"claims", "replayed_by"}:
            return None
        claims = _claims_from_document(document["claims"])
        replayed_by = document["replayed_by"]
        if not isinstance(replayed_by, str):
            return None
        return ReplayGrant(origin.decode("utf-8"), claims, replayed_by)
    except ValueError:  # UnicodeDecodeError and json.JSONDecodeError included
        return None
