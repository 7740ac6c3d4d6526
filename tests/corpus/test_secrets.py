"""Secret shapes redacted at append, and text that only looks close left alone."""

from __future__ import annotations

import pytest

from corpus.record import REDACTED, redact

SECRETS = [
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    "ghp_" + "a1B2" * 9,
    "github_pat_" + "A1b2_" * 9,
    "sk-proj-" + "abcd1234" * 4,
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "xoxb-1234567890-abcdef",
    "Authorization: Bearer " + "abc.def-ghi" * 3,
    "hf_" + "AbCdEf123" * 4,
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "rk_test_" + "51HxYzAbCdEfGhIjKlMn",
    "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "glpat-" + "xXxXxXxXxXxXxXxXxXxX",
    "npm_" + "a" * 36,
]


@pytest.mark.parametrize("secret", SECRETS)
def test_each_shape_is_redacted(secret: str) -> None:
    redacted = redact(f"config: {secret} end")
    assert REDACTED in redacted and secret not in redacted and redacted.endswith(" end")


@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI",
     "aws_secret_access_key = "),
    ("git clone https://deploy:s3cr3t-pass@example.com/repo.git", "s3cr3t-pass",
     "https://[redacted secret]@example.com/repo.git"),
])
def test_only_the_secret_part_goes(text: str, gone: str, kept: str) -> None:
    redacted = redact(text)
    assert gone not in redacted and kept in redacted


@pytest.mark.parametrize("text", [
    "see https://example.com/a:b/c and http://localhost:8000/v1",
    "def test_secret_key_length(): assert len(key) == 40",
    "the eyJ prefix starts every JWT",
    "sk_live is the prefix of live keys",
])
def test_text_that_only_looks_close_is_kept(text: str) -> None:
    assert redact(text) == text
