"""The embedded knowledge service: answers questions from Markdown documents (SQLite FTS5)."""
