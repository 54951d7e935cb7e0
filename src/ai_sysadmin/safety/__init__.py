"""Safety: pure functions, no I/O. Command policy, protected units, risk, autonomy."""
