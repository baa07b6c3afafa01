"""consumers.keys: the key format, its checksum and the keyed hash."""

import re

import pytest
from django.test import override_settings

from consumers import keys


def test_generated_key_has_the_documented_shape():
    generated = keys.generate()
    assert re.fullmatch(r"apim_[0-9A-Za-z]{50}", generated.plaintext)
    assert len(generated.plaintext) == keys.KEY_LENGTH == 55
    assert generated.plaintext.startswith(generated.display_prefix)
    assert keys.parse(generated.plaintext) == generated


def test_keys_are_unique():
    assert len({keys.generate().plaintext for _ in range(500)}) == 500


@pytest.mark.parametrize("position", [5, 20, 40, 54])
def test_any_changed_character_fails_the_checksum(position):
    plaintext = keys.generate().plaintext
    replacement = "A" if plaintext[position] != "A" else "B"
    tampered = plaintext[:position] + replacement + plaintext[position + 1 :]
    assert keys.parse(tampered) is None


@pytest.mark.parametrize("candidate", ["", "apim_", "apim_short", "x" * 55, "APIM_" + "a" * 50, None, 42])
def test_malformed_candidates_are_refused(candidate):
    assert keys.parse(candidate) is None


def test_non_base62_characters_are_refused():
    plaintext = keys.generate().plaintext
    assert keys.parse(plaintext[:-7] + "-" + plaintext[-6:]) is None


def test_digest_is_keyed_and_verifies():
    plaintext = keys.generate().plaintext
    stored = keys.digest(plaintext, pepper_id="1")
    assert len(stored) == 64 and plaintext not in stored
    assert keys.matches(plaintext, stored_digest=stored, pepper_id="1")
    assert not keys.matches(plaintext + "x", stored_digest=stored, pepper_id="1")
    with override_settings(APIM_KEY_PEPPERS={"1": "another-pepper-entirely-0123456789abcdef"}):
        assert not keys.matches(plaintext, stored_digest=stored, pepper_id="1")


def test_unknown_pepper_never_matches():
    plaintext = keys.generate().plaintext
    stored = keys.digest(plaintext, pepper_id="1")
    assert not keys.matches(plaintext, stored_digest=stored, pepper_id="missing")
