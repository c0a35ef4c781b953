"""Speech's Prometheus metrics: time to first audio, real-time factor, generations in flight,
the batching scheduler and each engine's state. SpeechConfig.ready() registers the ones read at
scrape time; core/metrics.py serves them all at /metrics."""

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from speech.admission import speech_slots
from speech.engines.base import EngineState
from speech.engines.registry import engine_states

SPEECH_TTFA = Histogram(
    "tts_speech_time_to_first_audio_seconds",
    "From admitting a speech request to its first encoded audio.",
    ["engine"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
SPEECH_RTF = Histogram(
    "tts_speech_real_time_factor",
    "Engine seconds per second of audio produced (below 1: faster than real time).",
    ["engine"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10),
)


def observe_first_audio(engine: str, seconds: float) -> None:
    SPEECH_TTFA.labels(engine=engine).observe(seconds)


def observe_generation(engine: str, engine_seconds: float, audio_seconds: float) -> None:
    if audio_seconds > 0:
        SPEECH_RTF.labels(engine=engine).observe(engine_seconds / audio_seconds)


def _batch_size() -> float:
    # Deferred: the scheduler imports torch, which a process that never runs CSM need not load.
    from speech.engines.scheduler import scheduler_batch_size

    return scheduler_batch_size()


def _waiting() -> float:
    # Deferred: the scheduler imports torch, which a process that never runs CSM need not load.
    from speech.engines.scheduler import scheduler_waiting

    return scheduler_waiting()


class EngineStateCollector(Collector):
    """1 for each engine's current state, read at scrape time."""

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        states = ["not_loaded", *(str(state) for state in EngineState)]
        for engine, info in engine_states().items():
            for state in states:
                family.add_metric([engine, state], 1.0 if info["state"] == state else 0.0)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tts_engine_state", "1 for each engine's current state.", labels=["engine", "state"]
        )


def register_speech_metrics() -> None:
    """The gauges read at scrape time, registered once per process."""
    Gauge(
        "tts_speech_inflight", "Speech generations running in this process (the queue depth)."
    ).set_function(lambda: speech_slots.inflight)
    Gauge(
        "tts_speech_batch_size", "Requests the batching scheduler steps together right now."
    ).set_function(_batch_size)
    Gauge(
        "tts_speech_scheduler_waiting",
        "Requests admitted by the batching scheduler and waiting for a place in its batch.",
    ).set_function(_waiting)
    REGISTRY.register(EngineStateCollector())
