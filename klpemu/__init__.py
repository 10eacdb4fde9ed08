"""klpemu: an x86_64 machine-code-level emulator of Linux ftrace and livepatch."""

__version__ = "0.1.0"
