"""Partner events in (R-EVT-1, R-EVT-2): what every partner's webhook format shares (the events
it yields, how its calls authenticate) and which partners send events; each partner's own format
lives in its folder (``cohortsync.partners.<name>.events``)."""
