"""Which PostgreSQL the tests run on when VIDGATE_TEST_POSTGRES_URL is unset: the local server
when it answers, none (with the reason) when nothing listens."""

from __future__ import annotations

import socket

import pytest

from local_postgres import DEFAULT_URL, VARIABLE, choose_postgres
from support import free_port


def test_nothing_listening_means_no_postgres_and_says_why() -> None:
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"

    choice = choose_postgres({}, default=nowhere)

    assert choice.url is None
    assert choice.line.startswith(f"postgresql: none at {nowhere} (")
    assert "skipped" in choice.line
    assert VARIABLE in choice.line


def local_server_listens() -> bool:
    """Independently of asyncpg: does anything accept connections on the default address?"""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=3):
            return True
    except OSError:
        return False


def test_the_local_server_is_found_when_it_answers() -> None:
    if not local_server_listens():
        pytest.skip("no PostgreSQL listens on 127.0.0.1:5432 here")

    choice = choose_postgres({})

    assert choice.url == DEFAULT_URL
    assert choice.line == f"postgresql: {DEFAULT_URL} (found answering; {VARIABLE} unset)"


def test_the_variable_wins_and_its_password_is_not_shown() -> None:
    # Port 1: nothing answers there, so a probe would have refused it.
    given = "postgresql+asyncpg://vidgate:secret@127.0.0.1:1/db"

    choice = choose_postgres({VARIABLE: given})

    assert choice.url == given
    assert "secret" not in choice.line
    assert (
        choice.line
        == f"postgresql: postgresql+asyncpg://vidgate:***@127.0.0.1:1/db (from {VARIABLE})"
    )


def test_an_empty_variable_turns_postgres_off() -> None:
    choice = choose_postgres({VARIABLE: ""}, default=DEFAULT_URL)

    assert choice.url is None
    assert choice.line == f"postgresql: off ({VARIABLE} is empty): skipped"
