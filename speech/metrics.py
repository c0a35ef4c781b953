"""Speech's Prometheus metrics: time to first audio, real-time factor, generations in flight,
the batching scheduler, each engine's state and how its frame step runs. SpeechConfig.ready()
registers the ones read at scrape time; core/metrics.py serves them all at /metrics."""

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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


class FrameStepCollector(Collector):
    """How each engine's frame step runs (engines that report a `runtime` with a capture):
    which shapes are captured, and how many steps ran captured and eager."""

    def describe(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        captured, steps = self._families()
        for engine, info in engine_states().items():
            runtime = info.get("runtime")
            if not runtime:
                continue
            for path, count in runtime["steps"].items():
                steps.add_metric([engine, path], float(count))
            capture = runtime.get("capture") or {}
            done = set(capture.get("captured", []))
            for shape in capture.get("planned", []):
                captured.add_metric([engine, shape], 1.0 if shape in done else 0.0)
        yield captured
        yield steps

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        captured = GaugeMetricFamily(
            "tts_frame_step_captured",
            "1 for each planned step shape (rows x span) whose compiled graph serves, else 0.",
            labels=["engine", "shape"],
        )
        steps = CounterMetricFamily(
            "tts_frame_steps",
            "Frame steps run, by path: captured (compiled graph) or eager.",
            labels=["engine", "path"],
        )
        return captured, steps


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
    REGISTRY.register(FrameStepCollector())
