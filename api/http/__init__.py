"""HTTP handling both doors share, none of it knowing either door's routes or types.

The middleware around every request (body and header limits, `HEAD` as `GET`, disconnects,
shedding at capacity, the WebSocket refusal, the security headers), the refusals no route
makes, which methods a path answers, and the one JSON body parser. `api.app` wires it.
"""
