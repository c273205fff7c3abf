"""What a store that cannot be reached raises: every path answering a request fails closed on these."""

from sqlalchemy.exc import OperationalError

from idp.store.database import DatabaseUnavailable
from idp.store.ephemeral import StoreUnavailable

STORE_FAILURES = (StoreUnavailable, DatabaseUnavailable, OperationalError)
