"""Local emulators of the partners' documented contracts, for tests, demos and development."""
