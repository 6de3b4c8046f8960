"""esi-cli: fetch federated secrets into files, or exec an application with them as env vars."""

__version__ = "0.1.0"
