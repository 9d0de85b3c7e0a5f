"""The test suite: test modules here, shared helpers under ``tests.support``."""
