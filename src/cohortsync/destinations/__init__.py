"""What every partner destination shares: the destination protocol, the partner HTTP client,
its errors, the connector config and the partner registry's checks; each partner's wire format
lives in its folder (``cohortsync.partners.<name>.destination``)."""
