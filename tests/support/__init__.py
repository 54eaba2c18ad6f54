"""Helpers shared by the test suite: real processes (Redis, workers) and polling."""
