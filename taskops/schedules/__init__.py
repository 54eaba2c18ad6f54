"""Schedules as data: portable definitions, previews of when they fire, and their file formats."""
