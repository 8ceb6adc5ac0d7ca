"""Which destinations each item goes to: the routes of router.yaml."""

from otlp_router.routing.table import Route, RoutingTable

__all__ = ["Route", "RoutingTable"]
