"""Allow ``python -m cohortsync``."""

from cohortsync.cli.main import app

app()
