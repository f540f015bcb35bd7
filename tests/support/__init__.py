"""Helpers for the tests and the benchmarks: generated photos and till frames, tiny models, a local
server, copies of the repository. Never imported by the agecheck package."""
