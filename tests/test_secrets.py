"""Secret masking: values under keys named like passwords, tokens and API keys never show,
in nested parameters, in structlog events and in stdlib log records."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from gnomon._secrets import MASK, MaskSecrets, is_secret_key, mask, mask_processor


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "PGPASSWORD",
        "passwd",
        "ssh_passphrase",
        "token",
        "GITHUB_TOKEN",
        "authToken",
        "secret",
        "client_secret",
        "aws_secret_access_key",
        "api_key",
        "apikey",
        "api-key",
        "X-Api-Key",
        "apiKey",
        "Authorization",
        "Proxy-Authorization",
        "credential",
        "gcp.credentials",
        "private_key",
        "tls private key",
        "secrets",
    ],
)
def test_keys_named_like_secrets_are_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokenizer_path",
        "password_file",
        "token_url",
        "max_tokens",
        "secret_name",
        "api_key_id",
        "author",
        "username",
        "region",
        "",
    ],
)
def test_keys_that_only_mention_a_secret_are_not_masked(key: str) -> None:
    assert not is_secret_key(key)


def test_mask_replaces_secret_values_at_any_depth_and_leaves_the_input_alone() -> None:
    parameters = {
        "region": "emea",
        "db": {"host": "db1", "db_password": "hunter2", "options": [{"api_key": "k-123"}]},
        "targets": ({"name": "a", "token": "t-1"},),
        "GITHUB_TOKEN": None,
        "limit": 5,
    }
    masked = mask(parameters)
    assert masked == {
        "region": "emea",
        "db": {"host": "db1", "db_password": MASK, "options": [{"api_key": MASK}]},
        "targets": ({"name": "a", "token": MASK},),
        "GITHUB_TOKEN": None,  # that a secret is unset is not a secret
        "limit": 5,
    }
    assert parameters["db"]["db_password"] == "hunter2"


def test_mask_masks_a_whole_structure_under_a_secret_key() -> None:
    assert mask({"credentials": {"user": "u", "key": "k"}}) == {"credentials": MASK}


def test_structlog_processor_masks_event_fields() -> None:
    stream = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[mask_processor, structlog.processors.JSONRenderer()],
    )
    logger.info("connecting", host="db1", password="hunter2", params={"api_key": "k"})
    line = json.loads(stream.getvalue())
    assert line == {
        "event": "connecting",
        "host": "db1",
        "password": MASK,
        "params": {"api_key": MASK},
    }
    assert "hunter2" not in stream.getvalue()


def test_logging_filter_masks_extra_fields_and_mapping_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(password)s %(params)s"))
    handler.addFilter(MaskSecrets())
    logger = logging.getLogger("gnomon.test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "run %(deployment)s with %(api_key)s",
            {"deployment": "etl", "api_key": "k-123"},
            extra={"password": "hunter2", "params": {"region": "emea", "token": "t-1"}},
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert stream.getvalue().strip() == (
        f"run etl with {MASK} {MASK} {{'region': 'emea', 'token': '{MASK}'}}"
    )
