"""The partners cohorts are synced to, one folder each (destination, event format, emulator,
outreach events, spec), registered in :mod:`cohortsync.partners.registry`."""
