"""Meta's AudioSeal watermark on generated speech, and its detection.

Importing this package costs nothing: torch and audioseal are imported when the models load.
"""

from speech.watermark.service import (
    WatermarkDetection,
    WatermarkState,
    WatermarkUnavailable,
    watermark_detect,
    watermark_preload,
    watermark_status,
    watermark_stream,
)

__all__ = [
    "WatermarkDetection",
    "WatermarkState",
    "WatermarkUnavailable",
    "watermark_detect",
    "watermark_preload",
    "watermark_status",
    "watermark_stream",
]
