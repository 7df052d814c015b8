"""The ``cohortsync`` command line for operators."""
