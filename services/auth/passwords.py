"""Password hashing (argon2id) and the password policy.

The list of common passwords comes from the `zxcvbn` package (Dropbox's strength
estimator, ported to Python): its 30,000 most frequent passwords from public breach
corpora, lower-cased. Only the ones long enough to pass the length rule matter here.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 128


@functools.cache
def common_passwords() -> frozenset[str]:
    """The common-password list, loaded on first use (it is a large module)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p for p in FREQUENCY_LISTS["passwords"] if len(p) >= MIN_LENGTH)


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why a new password is refused (for the account `email`); empty when it passes."""
    if len(password) < MIN_LENGTH:
        return [f"Password must be at least {MIN_LENGTH} characters long."]
    if len(password) > MAX_LENGTH:
        return [f"Password must be at most {MAX_LENGTH} characters long."]
    lowered = password.strip().lower()
    if password.lower() in common_passwords() or lowered in common_passwords():
        return ["This password is too common; choose one that is harder to guess."]
    if len(set(lowered)) <= 1:
        return ["A password of one character repeated is too easy to guess."]
    if email:
        # The first guesses of anyone who knows the address (NIST SP 800-63B 5.1.1.2).
        address = email.strip().lower()
        if lowered in {address, address.partition("@")[0]}:
            return ["The password must not be your email address or its part before the @."]
    return []


class Passwords:
    """argon2id hashing with configurable cost; verifies in similar time for unknown users."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """A new argon2id hash (salted) of `password`."""
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; a None hash still costs one verification."""
        if password_hash is None:
            # Unknown email: spend the same work so timing does not reveal who has an account.
            password_hash = self._dummy()
            password = password + "\x00unknown"
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def check_needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash was made with other parameters than the current ones."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy_hash
