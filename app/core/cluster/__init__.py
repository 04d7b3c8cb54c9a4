"""The cluster: mDNS advertisement and discovery, the peer table, the broker feed for the Go SDK.

Modules: ``txt`` (our TXT record and the bounded parser for peers'), ``naming`` (instance and
host names), ``addresses`` (A/AAAA records and mDNS interfaces), ``advertiser`` (registration,
renames, goodbye), ``discovery`` (browsing and validation), ``prober`` (the pluggable peer prober;
phase 1: grpc.health.v1), ``peers`` (the peer table), ``broker`` (``/v1/nodes/watch``) and
``cluster`` (the composition the Node starts and stops). See docs/cluster.md.
"""

from app.core.cluster.cluster import Cluster

__all__ = ["Cluster"]
