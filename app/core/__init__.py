"""The hub core: config, model resources, service host, gRPC server, discovery, cluster.

Nothing in this package imports Qt (PySide6, shiboken6, qasync); a test enforces it.
"""
