"""Lumen Node: a home AI node (gRPC hub, mDNS cluster, model downloads, tray app)."""

__version__ = "0.1.0"
