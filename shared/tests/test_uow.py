"""The one rule for transactions: use cases never commit, the entry point does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from shared.uow import UseCaseCommitted, commit_forbidden, unit_of_work

REPO = Path(__file__).resolve().parents[2]
# Every module of a service holds use cases (or what they call), except its entry points:
# the ones that own a transaction (views, commands, worker loops) and the app's wiring.
ENTRY_POINTS = frozenset({"__init__.py", "api.py", "cli.py", "worker.py", "wsgi.py", "delivery.py"})
USE_CASE_MODULES = sorted(
    path for path in REPO.glob("services/*/*.py") if path.name not in ENTRY_POINTS
)


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"

    id: Mapped[int] = mapped_column(primary_key=True)


class Refused(Exception):
    pass


@pytest.fixture
def session(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'uow.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def _count(session: Session) -> int:
    session.rollback()  # a fresh look at what was committed
    return int(session.scalar(sa.select(sa.func.count()).select_from(Thing)) or 0)


def test_what_the_block_did_is_committed_when_it_succeeds(session):
    with unit_of_work(session):
        session.add(Thing(id=1))
    assert _count(session) == 1


def test_an_error_rolls_back_everything_the_block_did(session):
    with pytest.raises(Refused), unit_of_work(session):
        session.add(Thing(id=1))
        session.flush()
        raise Refused
    assert _count(session) == 0


def test_an_error_the_entry_point_names_still_commits_and_is_raised(session):
    with pytest.raises(Refused), unit_of_work(session, commit_on=(Refused,)):
        session.add(Thing(id=1))
        raise Refused
    assert _count(session) == 1


def test_a_failed_commit_leaves_the_session_usable(session):
    with unit_of_work(session):
        session.add(Thing(id=1))
    with pytest.raises(sa.exc.IntegrityError), unit_of_work(session):
        session.add(Thing(id=1))  # the same primary key: the commit's flush fails
    with unit_of_work(session):
        session.add(Thing(id=2))
    assert _count(session) == 2


def test_a_commit_inside_a_guarded_block_is_refused(session):
    with pytest.raises(UseCaseCommitted), commit_forbidden(session):
        session.add(Thing(id=1))
        session.commit()
    session.rollback()
    with unit_of_work(session):  # the guard is gone with its block
        session.add(Thing(id=2))
    assert _count(session) == 1


def test_a_savepoint_is_not_a_commit(session):
    with unit_of_work(session), commit_forbidden(session):
        with session.begin_nested():
            session.add(Thing(id=1))
    assert _count(session) == 1


def _transaction_calls(source: str) -> list[str]:
    """The `.commit()` and `.rollback()` calls in a module's source, as "line: .name()"."""
    return [
        f"{node.lineno}: .{node.func.attr}()"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("commit", "rollback")
    ]


def test_the_use_case_modules_are_found():
    found = {f"{p.parent.name}/{p.name}" for p in USE_CASE_MODULES}
    assert found >= {
        "auth/services.py",
        "auth/registration.py",
        "auth/sessions.py",
        "auth/throttle.py",
        "auth/users.py",
        "orders/services.py",
        "orders/catalogue.py",
        "orders/customers.py",
        "orders/reads.py",
        "notifications/services.py",
        "notifications/webhooks.py",
    }


@pytest.mark.parametrize("module", USE_CASE_MODULES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_use_case_commits_or_rolls_back(module):
    assert _transaction_calls(module.read_text()) == []


def test_the_check_finds_a_commit_or_a_rollback():
    source = "def place(session):\n    session.add(1)\n    session.commit()\n"
    source += "def undo(s):\n    s.rollback()\n"
    assert _transaction_calls(source) == ["3: .commit()", "5: .rollback()"]
