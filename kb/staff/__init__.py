"""Staff accounts, sessions and permissions."""
