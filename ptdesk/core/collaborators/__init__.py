"""Collaborators: grants and revocation, key rotation, expiry, and what they take home."""
