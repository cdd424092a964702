"""Hostile input and faults, together: each test reproduces a way to lose or double a message."""
