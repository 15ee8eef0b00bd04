"""The API's JSON parser: anything the JSON decoder chokes on is a 400, never a 500."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # A body nested thousands deep exhausts the decoder's recursion: not JSON we take.
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
