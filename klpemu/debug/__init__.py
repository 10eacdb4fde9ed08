"""Stopping and inspecting the running machine."""
