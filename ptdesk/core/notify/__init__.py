"""Notifications: each person's routes (apprise URLs kept as secrets), events said once per box."""
