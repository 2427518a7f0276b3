"""Password hashing and policy (unit)."""

from __future__ import annotations

import pytest
from argon2 import Type, extract_parameters

from services.auth.config import OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST, auth_config
from services.auth.passwords import MAX_LENGTH, MIN_LENGTH, Passwords, password_problems
from services.auth.tests.conftest import PASSWORD
from shared.config import Env

FAST = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}


def test_production_defaults_meet_the_owasp_argon2id_floor():
    config = auth_config(Env({"APP_ENV": "production"}))
    assert config["AUTH_ARGON2_MEMORY_KIB"] >= OWASP_MIN_MEMORY_KIB >= 19456
    assert config["AUTH_ARGON2_TIME_COST"] >= OWASP_MIN_TIME_COST >= 2
    assert config["AUTH_ARGON2_PARALLELISM"] == 1
    passwords = Passwords(
        time_cost=config["AUTH_ARGON2_TIME_COST"],
        memory_kib=config["AUTH_ARGON2_MEMORY_KIB"],
        parallelism=config["AUTH_ARGON2_PARALLELISM"],
    )
    params = extract_parameters(passwords.hash(PASSWORD))
    assert params.type is Type.ID
    assert params.memory_cost >= 19456 and params.time_cost >= 2 and params.parallelism == 1


def test_a_hash_verifies_its_password_only():
    passwords = Passwords(**FAST)
    stored = passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "!")
    assert not passwords.verify("not-a-hash", PASSWORD)


def test_an_unknown_user_costs_a_verification_against_a_dummy_hash():
    passwords = Passwords(**FAST)
    assert not passwords.verify(None, PASSWORD)
    assert passwords._dummy_hash is not None  # the work was done


def test_hashes_made_with_other_parameters_need_a_rehash():
    old = Passwords(**FAST).hash(PASSWORD)
    stronger = Passwords(time_cost=2, memory_kib=2048, parallelism=1)
    assert stronger.check_needs_rehash(old)
    assert not stronger.check_needs_rehash(stronger.hash(PASSWORD))
    assert not Passwords(**FAST).check_needs_rehash(old)


def test_a_bcrypt_style_or_garbage_hash_needs_a_rehash():
    assert Passwords(**FAST).check_needs_rehash("$2b$12$abcdefghijklmnopqrstuv")


@pytest.mark.parametrize(
    "password",
    ["password", "Password1", "12345678", "qwertyuiop", "iloveyou", "trustno1", "passw0rd"],
)
def test_the_most_common_passwords_are_refused(password):
    assert password_problems(password) == [
        "This password is too common; choose one that is harder to guess."
    ]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("a" * (MIN_LENGTH - 1), "at least 8"),
        ("", "at least 8"),
        ("x" * (MAX_LENGTH + 1), "at most 128"),
    ],
)
def test_passwords_outside_8_to_128_characters_are_refused(password, message):
    (problem,) = password_problems(password)
    assert message in problem


@pytest.mark.parametrize(
    "password", [PASSWORD, "Tr0ub4dor&3x!", "éàçèüößñ", "xy" * (MAX_LENGTH // 2)]
)
def test_uncommon_passwords_of_allowed_length_pass(password):
    assert password_problems(password, email="ada@example.com") == []


@pytest.mark.parametrize("password", ["zzzzzzzzzz", "é" * 8, "Q" * MAX_LENGTH, " kkkkkkkkk "])
def test_one_character_repeated_is_refused(password):
    (problem,) = password_problems(password)
    assert "one character repeated" in problem


@pytest.mark.parametrize("password", ["ada.lovelace@example.com", "ADA.LOVELACE", "ada.lovelace "])
def test_the_accounts_own_email_or_its_local_part_is_refused(password):
    (problem,) = password_problems(password, email="Ada.Lovelace@example.com")
    assert "email address" in problem
    assert password_problems(password, email="grace@example.com") == []
