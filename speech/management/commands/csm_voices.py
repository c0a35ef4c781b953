"""Prepare, list or regenerate the standard voices' stored CSM reference segments."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from speech.engines.base import EngineState
from speech.engines.csm.engine import CsmEngine
from speech.engines.registry import engine_get
from speech.references import builtin_voice
from voices.standard import STANDARD_VOICES


class Command(BaseCommand):
    help = (
        "Create the standard voices' CSM references that are missing; with --rebuild, "
        "regenerate them (every request for those voices then sounds like the new reference)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names", nargs="*", help=f"Voices to act on (default all): {', '.join(STANDARD_VOICES)}"
        )
        parser.add_argument(
            "--rebuild", action="store_true", help="Regenerate even the voices that exist."
        )

    def handle(self, *args: Any, names: list[str], rebuild: bool, **options: Any) -> None:
        unknown = sorted(set(names) - set(STANDARD_VOICES))
        if unknown:
            raise CommandError(f"Not standard voices: {', '.join(unknown)}")
        names = names or list(STANDARD_VOICES)
        engine = engine_get("csm")
        assert isinstance(engine, CsmEngine)
        engine.load()  # already loading in the background: waits for it
        if engine.state is not EngineState.READY:
            raise CommandError(f"CSM is unavailable: {engine.reason}")
        for name in names:
            existed = builtin_voice(name) is not None
            engine.standard_voices_prepare([name], rebuild=rebuild)
            voice = builtin_voice(name)
            assert voice is not None
            action = "regenerated" if existed and rebuild else "kept" if existed else "created"
            self.stdout.write(f"{name}: {action} ({voice.duration_seconds:.1f} s, id {voice.id})")
