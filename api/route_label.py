"""The route template of a request: the only form of its path that logs and metrics may show.

Raw paths carry secret keys (`/secrets/<key>`), so they never become a log field or a metric
label; the template of the matched route (`/secrets/{secret_key}`) does.

The template is rebuilt from what routing leaves in the scope: the path with each matched
path parameter put back as `{name}`. This works for routes, included routers and mounts alike,
whatever the FastAPI version, where the route objects' own `path` may lack a router's prefix.
"""

from starlette.types import Scope

UNMATCHED = "unmatched"


def _find_segment(path: str, text: str, end: int) -> int:
    """Return where `text` (starting with `/`) ends a path segment before `end`, or -1."""
    position = path.rfind(text, 0, end)
    while position != -1 and path[position + len(text) : position + len(text) + 1] not in "/":
        position = path.rfind(text, 0, position + len(text) - 1)
    return position


def route_template(scope: Scope) -> str:
    """Return the template of the route that handled `scope`, or `UNMATCHED`.

    Call it once the application has run: routing records the endpoint and the path
    parameters in the scope. A request no route matched, or whose parameters cannot be put
    back exactly, gets `UNMATCHED` rather than anything taken from its raw path.
    """
    if scope.get("endpoint") is None:
        return UNMATCHED
    template: str = scope.get("path", "")
    end = len(template)
    # Parameters appear left to right; replacing from the right keeps literal segments
    # that happen to equal a value (`/secrets/secrets`) in place.
    for name, value in reversed(list((scope.get("path_params") or {}).items())):
        text = "/" + str(value)
        position = _find_segment(template, text, end)
        if position == -1:
            return UNMATCHED
        template = template[:position] + "/{" + name + "}" + template[position + len(text) :]
        end = position
    return template
