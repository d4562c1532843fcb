"""Unit tests: pure logic, files and tools; no server process and no database. Fast."""
