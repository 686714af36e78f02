"""The database every replica shares: connection, schema, the request log and how its rows settle
into the requests people made (settle.py)."""
