"""The client side of the Kubernetes API: REST client, informers, work queue, leader election, events.

Every Skiff component other than the API server talks to the cluster through
this package and nothing else (no back door into the store).
"""

from skiff.client.config import ClientConfig, ConfigError
from skiff.client.errors import ApiError, is_already_exists, is_conflict, is_not_found
from skiff.client.resources import Resource
from skiff.client.rest import ApiClient, WatchEvent

__all__ = [
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "ConfigError",
    "Resource",
    "WatchEvent",
    "is_already_exists",
    "is_conflict",
    "is_not_found",
]
