"""Partner destinations: the only code that knows a partner's wire format."""
