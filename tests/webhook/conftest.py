"""Fixtures of the webhook tests: a cached schema read, settings, an app and its test client."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import kubernetes_validate.utils
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.webhook.helpers_review import make_settings
from webhook.app import create_app
from webhook.settings import Settings


@pytest.fixture(scope="package", autouse=True)
def cached_kubernetes_schemas() -> Iterator[None]:
    """kubernetes_validate re-reads its multi-megabyte schema files on every call; read each once."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


@pytest.fixture
def settings() -> Settings:
    """Settings of a typical client cluster."""
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    """A webhook app for ``settings``."""
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    """A test client of ``app``."""
    with app.test_client() as test_client:
        yield test_client
