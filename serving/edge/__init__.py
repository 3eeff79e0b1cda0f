"""What instances share at the edge: rate limits, Redis state, API-key verification."""
