"""The neuroreg service: REST API, SQL store, dashboard and CLI."""
