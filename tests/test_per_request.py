"""once_per_request: a value worked out once a request, never carried over to the next."""

from __future__ import annotations

from itertools import count

from flask import Flask

from idp.per_request import once_per_request

counter = count()


@once_per_request
def numbered() -> int:
    return next(counter)


def test_a_request_works_the_value_out_once_and_the_next_request_again() -> None:
    app = Flask(__name__)

    with app.test_request_context():
        first = numbered()
        assert numbered() == first
    with app.test_request_context():
        assert numbered() == first + 1


def test_outside_an_application_context_it_is_worked_out_at_every_call() -> None:
    first = numbered()

    assert numbered() == first + 1
