"""Images and what they really contain: builds, recorded environments, drift, archives, pins."""
