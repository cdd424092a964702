"""Benchmarks of the WhatsApp channel on a real stack (``make bench``); README "Benchmarks"."""
