"""System tests: real processes (uvicorn, Chromium, PgBouncer, Redis, PostgreSQL, racers).

Every test under this folder is marked `system`.
"""
