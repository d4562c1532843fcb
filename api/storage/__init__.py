"""Storage: the database, its SQL, and every write as one transaction.

`database` (the engine and `Database`), `statements` (the service's SQL), `writes` (store and
delete a secret, with its receipt and the storage quota), `attempts` (claim and give back
passphrase attempts), `usage` (the storage quota's totals), `purge` (expired rows, in
batches), `migrations` (Alembic at start-up), `sqlite` (the SQLite file's privacy). Nothing
here knows about HTTP, GraphQL or passphrases.
"""
