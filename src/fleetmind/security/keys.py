"""The API key store: SHA-256 hashes at rest, constant-time checks, keys from a file and from the environment.

A key is shown once, when it is created, and only its hash is written (``<state>/keys.json``, replaced atomically
under a file lock so concurrent ``fleetmind keys`` commands never lose an entry). Servers re-read the file when it
changes, so a key created or revoked while the stack runs takes effect on the next request. Hashes can also come
from ``FLEETMIND_API_KEYS`` (comma-separated) and, for the design's reference deployments, ``PIECAT_API_KEYS``.

Every key has a scope, and a scope allows everything the ones below it do (``chat`` < ``operator`` < ``admin``):

- ``chat``: the OpenAI-compatible API (``/v1/*``) and the voice socket; what ``fleetmind keys create`` makes.
- ``operator``: Mission Control as well: tools, approvals (never of one's own request), events, its own state.
- ``admin``: everything, also every tenant's conversations and memories and whole-state save/load; the key that
  ``fleetmind up`` makes on first run.

A record written before keys had scopes has none and counts as ``operator``: it used to open Mission Control, so it
keeps doing that, but it is not trusted with everyone's data. A hash from the environment is ``operator`` too, or
the scope written before it: ``FLEETMIND_API_KEYS=admin:<sha256>,chat:<sha256>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, cast

from filelock import FileLock

from fleetmind.atomic import write_atomic

ENV_VARS = ("FLEETMIND_API_KEYS", "PIECAT_API_KEYS")
KEY_PREFIX = "fm-"

Scope = Literal["chat", "operator", "admin"]
SCOPES: tuple[Scope, ...] = ("chat", "operator", "admin")
# What a record or an environment hash without a scope gets (see the module docstring).
LEGACY_SCOPE: Scope = "operator"


class UnknownKeyError(LookupError):
    """A key id that is not in the store."""


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key, as stored and as ``echo -n KEY | sha256sum`` prints it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_scope(scope: str) -> Scope:
    """``scope`` if it is one of :data:`SCOPES`; ValueError otherwise."""
    if scope not in SCOPES:
        raise ValueError(f"unknown key scope {scope!r}: one of {', '.join(SCOPES)}")
    return cast(Scope, scope)


def scope_allows(have: str, need: Scope) -> bool:
    """Whether a key of scope ``have`` may do what needs ``need`` (an unknown scope may do nothing)."""
    return have in SCOPES and SCOPES.index(cast(Scope, have)) >= SCOPES.index(need)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    sha256: str
    created: int
    scope: Scope = LEGACY_SCOPE

    def allows(self, need: Scope) -> bool:
        return scope_allows(self.scope, need)


def _env_hashes() -> list[tuple[str, Scope]]:
    """(hash, scope) of every ``[scope:]hash`` item in the environment variables."""
    hashes: list[tuple[str, Scope]] = []
    for var in ENV_VARS:
        for item in os.environ.get(var, "").split(","):
            scope, _, digest = item.strip().lower().rpartition(":")
            if not digest:
                continue
            try:
                hashes.append((digest, check_scope(scope) if scope else LEGACY_SCOPE))
            except ValueError:
                continue  # a typo'd scope grants nothing rather than a default
    return hashes


class KeyStore:
    """Keys in ``path`` plus hashes from the environment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock")
        self._cache: list[ApiKey] = []
        self._cache_stamp: tuple[int, int] | None = None

    # -- reading -------------------------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read(self) -> list[ApiKey]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read API key file {self.path}: {exc}") from exc
        try:
            return [
                ApiKey(**{**entry, "scope": check_scope(entry.get("scope", LEGACY_SCOPE))})
                for entry in raw.get("keys", [])
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot read API key file {self.path}: {exc}") from exc

    def records(self) -> list[ApiKey]:
        stamp = self._stamp()
        if stamp != self._cache_stamp:
            self._cache = self._read() if stamp else []
            self._cache_stamp = stamp
        return list(self._cache)

    def hashes(self) -> list[str]:
        return [k.sha256 for k in self.records()] + [h for h, _ in _env_hashes()]

    def is_empty(self) -> bool:
        return not self.hashes()

    def verify(self, key: str | None) -> bool:
        """True when ``key`` hashes to a stored or configured hash; every hash is compared, in constant time."""
        if not key:
            return False
        digest = hash_key(key)
        ok = False
        for known in self.hashes():
            ok |= hmac.compare_digest(digest, known)
        return ok

    def identify(self, key: str | None) -> ApiKey | None:
        """The record ``key`` belongs to, or None. A key configured by its hash in the env gets a record with id
        ``env-<hash prefix>`` (each such key is its own tenant) and the scope written before the hash. Every hash
        is compared in constant time, as :meth:`verify` does; ValueError if the file is unreadable."""
        if not key:
            return None
        records, env = self.records(), _env_hashes()
        digest = hash_key(key)
        found: ApiKey | None = None
        for record in records:
            if hmac.compare_digest(digest, record.sha256):
                found = record
        for known, scope in env:
            if hmac.compare_digest(digest, known) and found is None:
                found = ApiKey(id="env-" + digest[:12], name="env", sha256=digest, created=0, scope=scope)
        return found

    # -- writing -------------------------------------------------------------------------------------------
    def _write(self, keys: list[ApiKey]) -> None:
        data = json.dumps({"keys": [asdict(k) for k in keys]}, indent=2)
        write_atomic(self.path, data.encode("utf-8"), mode=0o600)

    def create(self, name: str = "default", *, scope: Scope = "chat") -> tuple[str, ApiKey]:
        """Make a new key of ``scope``; returns the key itself (show it once) and its stored record."""
        scope = check_scope(scope)
        name = name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise ValueError("a key name must be 1-64 printable characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id="key_" + secrets.token_hex(6),
            name=name,
            sha256=hash_key(key),
            created=int(time.time()),
            scope=scope,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._write([*self._read(), record])
        return key, record

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock:
            keys = self._read()
            keep = [k for k in keys if k.id != key_id]
            if len(keep) == len(keys):
                raise UnknownKeyError(f"no API key with id {key_id!r}")
            self._write(keep)
        return next(k for k in keys if k.id == key_id)
