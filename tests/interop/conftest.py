from pathlib import Path

import pytest

from tests.grpc.conftest import big_webp, make_node  # noqa: F401  (shared fixtures)
from tests.interop.go_build import build_probe, require_go


@pytest.fixture(scope="session")
def wireprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go wireprobe, built once per session from tests/interop/go with stubs from proto/."""
    require_go()
    return build_probe(tmp_path_factory.mktemp("go"))
