"""The platform's four services and the code they share (services.common)."""
