"""Demo workload that gives the console something real to show (reports, flaky calls, emails)."""
