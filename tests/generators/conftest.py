"""Servers shared by the generator tests of one module: PostgreSQL, OpenBao with its database engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.openbao import OpenBao, running_openbao
from hack.postgres import Postgres, running_postgres
from tests.generators.helpers_dynamic import configure_database_engine


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def openbao(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[OpenBao]:
    directory: Path = tmp_path_factory.mktemp("openbao")
    with running_openbao(directory) as server:
        configure_database_engine(server, postgres)
        yield server
