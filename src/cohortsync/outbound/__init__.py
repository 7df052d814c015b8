"""Requests the service makes to addresses its users typed (partner hosts, webhook URLs, and
later alert hooks): each host resolved and checked before connecting (:mod:`.guard`), the
connection made to the address that was checked (:mod:`.transport`), replies read with a size
cap (:mod:`.replies`), and URLs kept free of credentials (:mod:`.urls`)."""
