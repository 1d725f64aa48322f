"""Who may get in: keys, authorized_keys, accounts, seals and ownership, ssh configs, login proofs."""
