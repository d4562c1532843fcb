"""The domain: what a one-time secret is and the rules around it.

`service` (create, reveal, burn) and `receipts` (follow, revoke; the public `ReceiptStatus`)
are what the doors call; `creators` checks creator tokens; `inputs` checks every value before
any state changes; `crypto` and `hashing` protect what is stored; `admission` bounds the
hashing queue; `cancellation` finishes or undoes a step a hang-up interrupted;
`unavailability` turns a failing database or a full queue into `ServiceUnavailable`; `purge`
removes expired secrets on a schedule; `clock` is the one notion of time; `errors` are the
outcomes the doors map; `events` are what metrics count. Nothing here imports a web
framework.
"""
