"""veille: Tracks escalated delicate situations and the veille meetings that review them. (port 8003)."""
