"""Clients in the console: the list and one client's registration (changes are the CLI's and the API's)."""

from __future__ import annotations

from werkzeug.wrappers import Response as BaseResponse

from idp.management import clients
from idp.management.context import NotFound
from idp.views.account.guard import administrator_required
from idp.views.account.pages import page
from idp.views.console.blueprint import blueprint
from idp.views.console.pages import acting
from idp.views.errors import not_found


@blueprint.route("/clients")
@administrator_required
def clients_page() -> BaseResponse:
    return page("admin_clients.html", clients=clients.all_clients(acting()))


@blueprint.route("/clients/<client_id>")
@administrator_required
def client_page(client_id: str) -> BaseResponse:
    try:
        client = clients.client_with_id(acting(), client_id)
    except NotFound as missing:
        return not_found(str(missing))
    return page("admin_client.html", client=client, registration=clients.registration_of(client))
