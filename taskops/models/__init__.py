"""The console's own models (audit entries, pending revokes, ... arrive with their features)."""
