"""The SQLite store of what ptdesk gave out, and the per-experiment files beside it."""
