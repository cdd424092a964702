"""Hostile input and faults, together: each test reproduces one way the promise ("never
lost after the 200, never a 5xx on bad input, never silence") was broken."""
