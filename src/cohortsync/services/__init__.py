"""Use cases: what the API, the web pages and the CLI ask the product to do."""
