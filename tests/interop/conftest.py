from tests.grpc.conftest import big_webp, make_node  # noqa: F401  (shared fixtures)
