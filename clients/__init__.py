"""Python client of the dimwatch service, the `dimwatch` CLI and the dashboard's static files."""

from clients._requests import DEFAULT_URL, RetryPolicy
from clients.async_client import AsyncDimwatchClient
from clients.client import DimwatchClient

__all__ = ["DEFAULT_URL", "AsyncDimwatchClient", "DimwatchClient", "RetryPolicy"]
