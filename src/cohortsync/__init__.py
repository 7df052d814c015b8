"""cohortsync: Mixpanel-compatible ingestion, cohorts, and cohort sync to engagement platforms."""

__version__ = "0.1.0"
