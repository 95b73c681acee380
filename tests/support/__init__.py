"""Test support: real processes on loopback ports, stopped by pid, with bounded waits."""
