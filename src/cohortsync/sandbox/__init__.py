"""What the partner emulators share (faults, the loopback server, the fleet, partner-event
callers); each emulator of a partner's documented contract lives in its folder
(``cohortsync.partners.<name>.emulator``), for tests, demos and development."""
