"""Load and overload (``make load``): locust against a real server, held to its targets."""
