"""The domain: what a one-time secret is and the rules around it.

`service` is what both doors call; `inputs` checks every value before any state changes;
`crypto` and `hashing` protect what is stored; `errors` are the outcomes the doors map;
`events` are what metrics count. Nothing here imports a web framework.
"""
