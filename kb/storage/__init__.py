"""The database every replica shares: connection, schema, the request log."""
