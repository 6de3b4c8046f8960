"""Kubernetes I/O of the federation server: the API client, watches, the Lease, the source, status.

The pure parts these build on (the model, parsing, checks, which Secrets a configuration references)
live in ``federation.config``, which imports nothing from here.
"""
