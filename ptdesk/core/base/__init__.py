"""Plain values every part of the core uses: models, names, times, sizes, text, private files."""
