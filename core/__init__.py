"""Core pieces shared by every package: settings, clock, records, bus and store."""
