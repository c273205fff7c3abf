"""What every console page shares: the management layer acting for the administrator, and the answer
to a refused operation (its one-sentence message, shown on the page it came from)."""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.wrappers import Response as BaseResponse

from idp.management.context import Management, ManagementError, NotFound
from idp.views.account.guard import account_holder
from idp.views.account.pages import redirect_with
from idp.views.errors import not_found
from idp.views.management import management_as


def acting() -> Management:
    """The management layer acting for the signed-in administrator, audited as done in the console."""
    return management_as("console", account_holder().id)


def perform(operation: Callable[[Management], str], *, then: str) -> BaseResponse:
    """Run an operation, then show the page `then` with what it did (or why it was refused)."""
    try:
        done = operation(acting())
    except NotFound as missing:
        return not_found(str(missing))
    except ManagementError as refused:
        return redirect_with(then, str(refused), "error")
    return redirect_with(then, done, "success")
