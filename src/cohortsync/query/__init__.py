"""Cohort definitions compiled to SQL, one path for every dialect."""
