from tests.models.conftest import tiny_backbones  # noqa: F401  (shared session fixture)
