"""The HTTP API: Mixpanel-compatible ingestion and the REST API under /api/v1."""
