"""Storage: the engine, the SQL statements, migrations and the purge of expired rows.

Nothing here knows about HTTP, GraphQL or passphrases.
"""
