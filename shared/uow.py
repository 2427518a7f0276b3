"""The entry point's transaction: use cases change the session, the entry point commits.

A use case (`services.py`) never commits or rolls back: it adds its changes and the
events it raises (outbox rows, `shared.outbox.record_event`) to the session it was given.
Whoever called it (an API view, a CLI command, an inbox handler, a worker loop) owns the
transaction and ends it in one place:

    with unit_of_work(session):
        user = services.update_user(session=session, ...)

So a handler that calls two use cases, or a use case that calls another, still makes one
transaction: the change, its events and the inbox row commit together or not at all.

Some refusals must keep what the use case wrote: a failed login is counted even though
the request answers 401, a re-used refresh token revokes its family even though the
request answers 401. The entry point says so explicitly with `commit_on`; every other
error rolls everything back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session

ErrorTypes = tuple[type[BaseException], ...]


@contextmanager
def unit_of_work(session: Session, *, commit_on: ErrorTypes = ()) -> Iterator[Session]:
    """Commit what the block did, or roll it back; errors of `commit_on` types still commit."""
    try:
        yield session
    except BaseException as exc:
        if isinstance(exc, commit_on):
            _commit(session)
        else:
            session.rollback()
        raise
    _commit(session)


def _commit(session: Session) -> None:
    try:
        session.commit()
    except BaseException:
        # A failed commit leaves the session unusable until rolled back.
        session.rollback()
        raise


class UseCaseCommitted(AssertionError):
    """A use case ended the transaction that belongs to its entry point."""


@contextmanager
def commit_forbidden(session: Session) -> Iterator[Session]:
    """Within the block, a commit of `session` raises UseCaseCommitted (tests run use cases so)."""

    def refuse(committing: Session) -> None:
        # Releasing a savepoint dispatches before_commit as well; it ends no transaction.
        if not committing.in_nested_transaction():
            raise UseCaseCommitted("a use case committed; only its entry point may")

    sa.event.listen(session, "before_commit", refuse)
    try:
        yield session
    finally:
        sa.event.remove(session, "before_commit", refuse)
