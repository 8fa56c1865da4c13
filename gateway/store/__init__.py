"""Where dynamic routes and the version history live: `ConfigStore` and its kinds (memory, file; Redis next).

A version is one `VersionRecord`: its number, when and by whom it was made and why, the checksum of what served,
the dynamic routes as written (plain JSON data in routes.yaml's route shape: the source of truth for them) and the
static routes of that moment (redacted, for views and diffs only: the routes file stays their source of truth).
A fresh store holds version 0: no routes, author `store`. The supervisor is the only writer: it appends a version
after every worker prepared it and before any commits it, so what serves is always durable first.
"""

from gateway.store.base import ConfigStore, StoreError, VersionConflict, VersionRecord, fresh_record, open_store

__all__ = ["ConfigStore", "StoreError", "VersionConflict", "VersionRecord", "fresh_record", "open_store"]
