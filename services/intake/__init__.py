"""intake: enrols households into programmes and follows their accompaniment (port 8001)."""
