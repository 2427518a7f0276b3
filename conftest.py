"""Root conftest: the tests run with the embedded defaults of the `test` environment."""

import os

os.environ.setdefault("APP_ENV", "test")

pytest_plugins = ["tests.support"]
