"""The node's gRPC surface: one grpc.aio server hosting health, inference and the node API."""
