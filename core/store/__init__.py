"""The SQL store: schema, migrations and the write/read functions shared by the API
and the worker (one place for each write)."""
