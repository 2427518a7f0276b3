"""RSA signing keys kept as PEM files in one directory (`AUTH_SIGNING_KEYS_DIR`).

Files sort by name and the last one signs; every key in the directory is published in
the JWKS, so tokens signed before a rotation keep verifying until the old file is
removed. `rotate_key` names files by UTC time so that "last by name" is "newest".
The `kid` of a key is its RFC 7638 JWK thumbprint, so it is derived, never configured.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.tokens import StaticKeySource

log = logging.getLogger(__name__)

KEY_BITS = 2048
MIN_KEY_BITS = 2048
ALGORITHM = "RS256"


class SigningKeyError(RuntimeError):
    """A key file is unusable, or there is no key to sign with."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk_fields(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The required RSA members of a JWK (RFC 7518 section 6.3.1)."""
    numbers = public_key.public_numbers()
    return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}


def thumbprint(jwk_fields: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of an RSA JWK."""
    canonical = json.dumps(
        {name: jwk_fields[name] for name in ("e", "kty", "n")},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """One RSA private key and its derived key id."""

    kid: str
    private_key: rsa.RSAPrivateKey
    path: Path

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey, path: Path) -> SigningKey:
        """Wrap a private key, deriving its kid from the public half."""
        return cls(thumbprint(public_jwk_fields(private_key.public_key())), private_key, path)

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK, ready for the JWKS document."""
        jwk = public_jwk_fields(self.private_key.public_key())
        jwk.update(kid=self.kid, alg=ALGORITHM, use="sig")
        return jwk


def load_key_file(path: Path) -> SigningKey:
    """Read one PEM private key; only RSA keys of at least 2048 bits are accepted."""
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path.name}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise SigningKeyError(f"{path.name}: only RSA keys can sign RS256 tokens")
    if private_key.key_size < MIN_KEY_BITS:
        raise SigningKeyError(f"{path.name}: RSA keys must have at least {MIN_KEY_BITS} bits")
    return SigningKey.from_private_key(private_key, path)


def key_files(directory: Path) -> list[Path]:
    """The PEM files of a key directory, oldest first (sorted by name)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".pem" and p.is_file())


def load_keys(directory: Path) -> list[SigningKey]:
    """Every key of the directory, oldest first; duplicates of one key count once."""
    keys: dict[str, SigningKey] = {}
    for path in key_files(directory):
        key = load_key_file(path)
        keys.pop(key.kid, None)  # a copy under a newer name moves the key to the end
        keys[key.kid] = key
    return list(keys.values())


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Serialise key creation between processes (gunicorn workers, CLI) on one machine."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_new_key(directory: Path, *, bits: int = KEY_BITS) -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = SigningKey.from_private_key(private_key, directory)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"{stamp}-{key.kid[:12]}.pem"
    # Write then rename, so no reader ever sees half a key file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".new-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return SigningKey(key.kid, private_key, final)


def ensure_key(directory: Path | str, *, bits: int = KEY_BITS) -> SigningKey:
    """The current signing key, creating the first one when the directory has none."""
    directory = Path(directory)
    with _directory_lock(directory):
        keys = load_keys(directory)
        if keys:
            return keys[-1]
        log.info("created the first signing key", extra={"directory": str(directory)})
        return _write_new_key(directory, bits=bits)


def rotate_key(directory: Path | str, *, bits: int = KEY_BITS) -> SigningKey:
    """Add a new key that signs from now on; older keys stay published for verification."""
    directory = Path(directory)
    with _directory_lock(directory):
        return _write_new_key(directory, bits=bits)


def _directory_signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    signature = []
    for path in key_files(directory):
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            signature.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


class KeyRing:
    """The keys of one directory: signs with the newest, verifies with all.

    It is also the `KeySource` of the service's own TokenVerifier: a `StaticKeySource`
    built from our own JWKS, rebuilt whenever the directory changes (checked at most
    every `reload_seconds`), so a `keys rotate` reaches running workers without a restart.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        reload_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.reload_seconds = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._source = StaticKeySource({"keys": []})
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._checked_at = float("-inf")

    def load(self) -> KeyRing:
        """Read the directory now; unusable key files raise (at start-up, loudly)."""
        with self._lock:
            self._load_locked()
        return self

    def _load_locked(self) -> None:
        signature = _directory_signature(self.directory)
        keys = load_keys(self.directory)
        self._keys = keys
        self._source = StaticKeySource({"keys": [k.public_jwk() for k in keys]})
        self._signature = signature
        self._checked_at = self._clock()

    def refresh(self) -> None:
        """Reload when the directory changed and the check interval has passed."""
        now = self._clock()
        if now - self._checked_at < self.reload_seconds:
            return
        with self._lock:
            if now - self._checked_at < self.reload_seconds:
                return
            self._checked_at = now
            try:
                if _directory_signature(self.directory) != self._signature:
                    self._load_locked()
                    log.info("signing keys reloaded", extra={"kids": self.kids})
            except (OSError, SigningKeyError) as exc:
                # Keep serving with the keys we have; a bad file must not stop logins.
                log.error("signing keys not reloaded", extra={"error": str(exc)})

    @property
    def kids(self) -> list[str]:
        """Key ids, oldest first."""
        return [k.kid for k in self._keys]

    def signing_key(self) -> SigningKey:
        """The newest key; raises when the directory holds none."""
        self.refresh()
        keys = self._keys
        if not keys:
            raise SigningKeyError(f"no signing key in {self.directory}; run `flask keys ensure`")
        return keys[-1]

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document of every key (what /jwks.json serves)."""
        self.refresh()
        return {"keys": [k.public_jwk() for k in reversed(self._keys)]}

    def get_key(self, kid: str) -> jwt.PyJWK | None:
        """The public key for `kid` (the KeySource protocol of shared.tokens)."""
        self.refresh()
        return self._source.get_key(kid)
