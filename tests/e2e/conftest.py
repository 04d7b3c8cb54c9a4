from tests.core.conftest import isolated_home  # noqa: F401  (re-exported fixture)
