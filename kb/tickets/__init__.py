"""Tickets and their delivery: intake with the session transcript, the outbox."""
