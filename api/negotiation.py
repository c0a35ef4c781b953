from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JsonOnlyNegotiation(BaseContentNegotiation):
    """The API answers JSON (or audio, outside DRF's renderers) whatever `Accept` says.

    OpenAI clients send `Accept: application/octet-stream` for speech; a 406 would break them.
    """

    def select_parser(self, request: Request, parsers: list):
        for parser in parsers:
            if request.content_type.startswith(parser.media_type):
                return parser
        return None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type
