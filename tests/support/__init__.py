"""Helpers shared by test modules, imported as ``tests.support.<module>``."""
