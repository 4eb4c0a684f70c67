"""The operator's custom resources, addressed like the built-in ones (skiff.client.resources)."""

from __future__ import annotations

from skiff.client.resources import Resource

GROUP = "etcd.database.coreos.com"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"
ETCDCLUSTERS = Resource(GROUP, VERSION, "etcdclusters", "EtcdCluster")
ETCDBACKUPS = Resource(GROUP, VERSION, "etcdbackups", "EtcdBackup")
ETCDRESTORES = Resource(GROUP, VERSION, "etcdrestores", "EtcdRestore")
