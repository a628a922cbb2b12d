"""stats: projections of every service's events and the reports API (port 8004)."""
