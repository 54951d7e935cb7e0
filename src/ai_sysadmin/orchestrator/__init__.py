"""The wiring: checks of hosts into the incident store, the daemon loop."""
