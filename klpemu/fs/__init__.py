"""The /proc and /sys trees a shell user reads, as views over the machine."""
