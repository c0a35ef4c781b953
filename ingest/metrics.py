"""Ingest's Prometheus metric: cloning jobs by status, counted at scrape time. IngestConfig.ready()
registers it; core/metrics.py serves it at /metrics."""

import logging
from collections.abc import Iterable, Iterator

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.models import IngestJob

logger = logging.getLogger(__name__)


class IngestJobCollector(Collector):
    """Ingest jobs by status; nothing while the database cannot be asked."""

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Without describe(), registering would call collect() (and query the database) at once.
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(IngestJob.Status.values, 0)
        try:
            # One aggregate query, whatever the number of jobs.
            rows = IngestJob.objects.order_by().values_list("status").annotate(n=Count("pk"))
            counts.update(dict(rows))
        except DatabaseError:
            logger.warning("metrics: could not count ingest jobs", exc_info=True)
            return
        family = self._family()
        for status, count in counts.items():
            family.add_metric([status], float(count))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("tts_ingest_jobs", "Ingest jobs by status.", labels=["status"])


def register_ingest_metrics() -> None:
    REGISTRY.register(IngestJobCollector())
