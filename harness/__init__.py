"""dbunit-harness: local emulation and load testing of the Database Unit."""

__version__ = "0.1.0"
