"""Words the console uses in more than one layer, written once: signals, outcome levels."""

from __future__ import annotations

# Signals a terminate may send to a running task.
SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGKILL")
