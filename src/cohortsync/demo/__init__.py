"""Demo data for trying cohortsync out and for benchmarks."""
