"""The dashboard: static HTML and JS served by the API (see server/routes/ui.py)."""
