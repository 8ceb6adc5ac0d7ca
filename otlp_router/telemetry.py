"""The router's own metrics, named in the Collector's spirit so dashboards carry over.

Counters are per request or per batch with the item count as the increment,
never per span, so they cost nothing measurable on the data path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from otlp_router import __version__

# `_created` series only add noise here (and cannot be added up across workers).
disable_created_metrics()
VERSION = __version__
REGISTRY = CollectorRegistry(auto_describe=True)

_RECEIVER = ("receiver", "transport", "signal")

receiver_accepted = Counter(
    "otlp_router_receiver_accepted_items", "Items (spans, ...) accepted and acknowledged to the client.",
    _RECEIVER, registry=REGISTRY)
receiver_refused = Counter(
    "otlp_router_receiver_refused_items", "Items refused, by reason (partial_success, backpressure, ...).",
    _RECEIVER + ("reason",), registry=REGISTRY)
receiver_refused_requests = Counter(
    "otlp_router_receiver_refused_requests", "Requests answered with an error, by status.",
    _RECEIVER + ("status",), registry=REGISTRY)
routed = Counter(
    "otlp_router_routed_items", "Items sent on by a route.", ("route", "signal"), registry=REGISTRY)
unrouted = Counter(
    "otlp_router_unrouted_items", "Items no route matched (and no default route took).", ("signal",),
    registry=REGISTRY)
exporter_sent = Counter(
    "otlp_router_exporter_sent_items", "Items a destination confirmed.", ("destination", "signal"),
    registry=REGISTRY)
exporter_failed = Counter(
    "otlp_router_exporter_send_failed_items", "Items of failed export attempts, by reason.",
    ("destination", "signal", "reason"), registry=REGISTRY)
exporter_dropped = Counter(
    "otlp_router_exporter_dropped_items", "Items given up on (permanent rejection, retries exhausted).",
    ("destination", "signal", "reason"), registry=REGISTRY)
spool_bytes = Gauge(
    "otlp_router_spool_bytes", "Bytes waiting in a destination's spool.", ("destination",), registry=REGISTRY)
spool_items = Gauge(
    "otlp_router_spool_items", "Items waiting in a destination's spool.", ("destination",), registry=REGISTRY)
sampled_out = Counter(
    "otlp_router_sampled_out_items", "Items a destination's sampling left out.", ("destination", "signal"),
    registry=REGISTRY)
spool_corrupt = Counter(
    "otlp_router_spool_corrupt_records", "Corrupt records found in the middle of a spool segment at start-up.",
    ("destination",), registry=REGISTRY)
spool_lost_records = Counter(
    "otlp_router_spool_lost_records", "Records start-up found torn (a cut final record) or missing (numbers no "
    "segment holds that were never acknowledged), by reason.", ("destination", "reason"), registry=REGISTRY)
spool_write_errors = Counter(
    "otlp_router_spool_write_errors", "Appends refused because the spool could not be written (disk full ...).",
    ("destination",), registry=REGISTRY)
dead_lettered = Counter(
    "otlp_router_dead_lettered_items",
    "Items kept in a destination's dead letter, by reason (rejected, exhausted: past retry.max_elapsed, "
    "poison: the router could not handle them).", ("destination", "signal", "reason"), registry=REGISTRY)
limited_attributes = Counter(
    "otlp_router_receiver_limited_attributes", "Attributes dropped or values truncated by the receiver limits.",
    ("action",), registry=REGISTRY)
spool_oldest_age = Gauge(
    "otlp_router_spool_oldest_pending_age_seconds", "Age of the oldest item a destination has not confirmed.",
    ("destination",), registry=REGISTRY)
export_batch_items = Histogram(
    "otlp_router_exporter_batch_items", "Items per export request.", ("destination",),
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000), registry=REGISTRY)
export_latency = Histogram(
    "otlp_router_exporter_latency_seconds", "Time of one export attempt, success or not.", ("destination",),
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)
