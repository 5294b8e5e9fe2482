"""The web app under ``/ui``: pages a person uses in a browser (docs/ui.md)."""
