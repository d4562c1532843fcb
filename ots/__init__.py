"""`ots`: the terminal client of the one-time secret service, and the `ots1` format it shares.

It imports nothing from the server (`api`, `models`), so it could ship on its own.
"""

__version__ = "0.1.0"
