"""Partner events in (R-EVT-1, R-EVT-2): each partner's outbound webhook format, normalised into
events tagged with ``$source``; one module per partner so its wire format has one home."""
