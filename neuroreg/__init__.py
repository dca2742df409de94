"""neuroreg's Python client: ``from neuroreg.client import Client``."""
