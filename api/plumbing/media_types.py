"""Which request bodies count as JSON: one rule for both doors, parsed rather than matched."""

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


# The same words on both doors for a body that cannot be read as a JSON object.
NOT_JSON = "Unable to parse request body as JSON"
NOT_AN_OBJECT = "Request body must be a JSON object"
