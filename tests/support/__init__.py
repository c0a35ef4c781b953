"""Helpers and fixtures shared by the tests, each in one place.

audio (recordings, tones, encoded files), cloning (cloning requests and what a refusal leaves),
fixtures and whisper (fixtures, registered by tests/conftest.py), processes (child processes,
free ports, waiting), storage (stored files), voices (voices made directly in the database).
"""
