"""Each override of a library's internals holds for the installed version, or a test says so."""

import importlib
import inspect
import re

import pytest

from shared.overrides import OVERRIDES, Override, main, parse_version, problems

IDS = [f"{o.target}.{'/'.join(o.members)}" for o in OVERRIDES]


@pytest.mark.parametrize("override", OVERRIDES, ids=IDS)
def test_the_installed_library_supports_the_override(override):
    assert problems(override) == []


@pytest.mark.parametrize("override", OVERRIDES, ids=IDS)
def test_a_version_outside_the_range_is_reported(override):
    too_new = ".".join(map(str, override.before))
    too_old = f"{override.since[0] - 1}.99"

    assert len(problems(override, version=too_new)) == 1
    assert len(problems(override, version=too_old)) == 1
    assert problems(override, version=".".join(map(str, override.since))) == []


@pytest.mark.parametrize("override", OVERRIDES, ids=IDS)
def test_the_registry_names_the_module_that_overrides(override):
    source = inspect.getsource(importlib.import_module(override.used_by))
    for member in override.members:
        assert re.search(rf"def {member}\(", source), f"{override.used_by} defines no {member}"


def test_a_method_that_lost_a_parameter_or_went_away_is_reported():
    changed = Override(
        library="python",
        since=(3,),
        before=(4,),
        target="smtplib:SMTP",
        members={"_get_socket": ("host", "deadline"), "_open_socket": ()},
        used_by="services.notifications.delivery",
        why="-",
    )

    assert problems(changed) == [
        "services.notifications.delivery: smtplib:SMTP._get_socket lost deadline",
        "services.notifications.delivery: smtplib:SMTP has no _open_socket any more",
    ]


def test_versions_compare_by_their_release_numbers():
    assert parse_version("27.0.1") == (27, 0, 1)
    assert parse_version("2.8.0rc1") == (2, 8, 0)
    assert (2, 2) <= parse_version("2.10") < (3,)


def test_the_command_lists_every_override(capsys):
    assert main() == 0
    assert len(capsys.readouterr().out.splitlines()) == len(OVERRIDES)
