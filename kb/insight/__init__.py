"""What staff learn from the log: content gaps, replay, dashboard figures and charts."""
