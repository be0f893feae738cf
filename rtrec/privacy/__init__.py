"""Pseudonymous user ids (docs/privacy.md).

A user id is replaced where it enters the platform (the producer, ``POST /v1/events``) by a
keyed hash: HMAC-SHA256 of the raw id under a secret key, kept as ``p_`` and its first 24 hex
digits (96 bits: collisions are negligible for any shop's users). Without the key nobody can
go from a pseudonym back to the person, nor test a guessed id against it, which a plain hash
would allow. The same key gives the same pseudonym everywhere, so the streams, the lake and
the online store join on it, and a caller holding the raw id (the API's readers, ``rtrec
privacy forget``) hashes it the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.schema.events import USER_ID

PREFIX = "p_"
DIGITS = 24

Pseudonymise = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ForgetUser:
    """A forget request as the DataStream jobs see it: drop the user's keyed state and delete
    the user's records downstream."""

    user_id: str


def pseudonym(key: bytes, user_id: str) -> str:
    """The pseudonym of ``user_id`` under ``key``: ``p_`` + 24 lower-case hex digits."""
    digest = hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:DIGITS]


def pseudonym_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    """The key: the environment variable ``privacy.key_env`` names, else the content of
    ``privacy.key_file`` (trailing newline stripped, as secret files often carry one).
    Raises RtrecError naming both when neither gives a non-empty key."""
    privacy = settings.privacy
    env = os.environ if environ is None else environ
    key = env.get(privacy.key_env, "")
    if key:
        return key.encode("utf-8")
    if privacy.key_file:
        path = Path(privacy.key_file)
        try:
            content = path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise RtrecError(
                f"privacy.key_file: cannot read the pseudonym key from {path}: {exc.strerror}"
            ) from None
        if content:
            return content
        raise RtrecError(f"privacy.key_file: {path} is empty; it must hold the pseudonym key")
    raise RtrecError(
        f"privacy.pseudonymise is on but there is no key: set the environment variable "
        f"{privacy.key_env} (privacy.key_env) or point privacy.key_file at a file holding it"
    )


def pseudonymiser(settings: Settings, environ: Mapping[str, str] | None = None) -> Pseudonymise:
    """How this deployment turns a raw user id into the id it stores: the keyed hash when
    ``privacy.pseudonymise`` is on (the key is read once, here, so a missing key fails at
    start), the id itself when off."""
    if not settings.privacy.pseudonymise:
        return _unchanged
    key = pseudonym_key(settings, environ)
    return lambda user_id: pseudonym(key, user_id)


def _unchanged(user_id: str) -> str:
    return user_id


def pseudonymise_event(event: Mapping[str, Any], hide: Pseudonymise) -> Mapping[str, Any]:
    """``event`` with its user id replaced by ``hide(user_id)`` (a copy; the event itself when
    that changes nothing, so pseudonymisation off costs no copy per event)."""
    user = str(event[USER_ID])
    hidden = hide(user)
    return event if hidden == user else {**event, USER_ID: hidden}


def pseudonymise_payload(payload: bytes, hide: Pseudonymise) -> bytes:
    """A raw payload that failed validation, with its user id hidden when it has one: a JSON
    object whose ``user_id`` is a string. Anything else cannot name a user and is kept as it
    is, because the dead-letter route needs the payload as sent."""
    try:
        parsed = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload
    if not isinstance(parsed, dict) or not isinstance(parsed.get(USER_ID), str):
        return payload
    hidden = hide(parsed[USER_ID])
    if hidden == parsed[USER_ID]:  # pseudonymisation off: the payload stays byte for byte
        return payload
    parsed[USER_ID] = hidden
    return json.dumps(parsed, separators=(",", ":")).encode("utf-8")
