"""casework: Records interviews, collective workshops and rehousings. (port 8002)."""
