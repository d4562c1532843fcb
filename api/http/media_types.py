"""Which request bodies count as JSON, and the words both doors use for one they refuse.

The content type is parsed rather than matched; the body itself is read by one parser for
both doors (`api.http.json_bodies`), so a body one door refuses, the other refuses too,
with the same status and the same words.
"""

from email.message import Message

NOT_JSON_MEDIA_TYPE = "Content-Type must be application/json"


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON: `application/json` or `application/*+json`.

    Parsed as a media type, so case and parameters (`; charset=utf-8`) do not matter, and a
    parameter that merely mentions JSON (`text/plain; x=application/json`) does not count.
    This is the rule FastAPI applies to REST bodies.
    """
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


# The same words on both doors for a body that cannot be read as a JSON object: malformed or
# empty, not UTF-8, nested too deeply, an integer too long to convert (400) ...
NOT_JSON = "Unable to parse request body as JSON"
NOT_AN_OBJECT = "Request body must be a JSON object"
# ... or one that repeats a key within an object (422).
REPEATED_KEY = "JSON must not repeat a key within one object"
