"""The shipped real-Vault example loads, builds a vault provider, and explains its empty token."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from federation.config.parse import build_configuration
from federation.errors import StoreError
from federation.settings import Settings
from federation.stores.registry import StoreRegistry

EXAMPLE = Path(__file__).parents[3] / "examples" / "cluster-main" / "real-vault" / "vault-prod.yaml"


def test_real_vault_example_builds_and_names_the_empty_token_secret() -> None:
    config = build_configuration(list(yaml.safe_load_all(EXAMPLE.read_text())), str(EXAMPLE))
    assert config.stores["vault-prod"].kind == "vault"
    provider = StoreRegistry(Settings()).provider(config, "vault-prod")
    with pytest.raises(StoreError, match="Secret esi-system/vault-prod-token key 'token' is empty"):
        provider.read("db-credentials")
