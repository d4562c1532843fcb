"""The benchmark: the service against its physical limit and against a naive baseline.

Run it with `scripts/bench` (the full run, which rewrites `BENCHMARKS.md`) or
`scripts/bench --smoke` (a short run for CI that fails only on errors).
"""
