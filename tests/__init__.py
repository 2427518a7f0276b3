"""The suite's cross-service tests and the harness every test uses (tests.support)."""
