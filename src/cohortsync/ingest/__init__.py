"""Mixpanel-compatible ingestion: request bodies, validation, dedup and storage of batches."""
