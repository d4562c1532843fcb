"""HTTP plumbing both doors share: middleware, logs, metrics, error shapes, rate limiting.

Nothing here knows either door's routes or types; `api.app` wires it around them.
"""
