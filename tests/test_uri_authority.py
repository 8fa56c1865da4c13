"""gateway.uri.valid_authority: the one host[:port] grammar (SetRequestHostHeader, RewriteLocationResponseHeader)."""

from __future__ import annotations

import pytest

from gateway.uri import check_authority, valid_authority

VALID = ["example.org", "a", "api.example.org:8443", "10.0.0.5:1", "x:65535", "under_score.local", "[::1]", "[::1]:80"]
VALID += ["[2001:db8::1]:8080", "[::ffff:10.0.0.1]", "xn--caf-dma.example"]
INVALID = ["", ":80", "a b", "a@b", "a/b", "a,b", "a;b", "a~b", "a%41", ".a", "-a", "a..b", "x:", "x:0", "x:65536"]
INVALID += [
    "x:99999",
    "x:+1",
    "x:１",
    "a:1:2",
    "[::1",
    "[]",
    "[1.2.3.4]",
    "[::1]x",
    "[::1]:",
    "[::1%eth0]",
    "é.example",
]
INVALID += ["a" * 254]


@pytest.mark.parametrize("value", VALID)
def test_valid(value: str) -> None:
    assert valid_authority(value)
    assert check_authority(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_invalid(value: str) -> None:
    assert not valid_authority(value)
    with pytest.raises(ValueError, match=r"not a host\[:port\]"):
        check_authority(value)


def test_a_template_is_judged_by_its_sample_and_reported_as_written() -> None:
    assert check_authority("{t}.internal", "x.internal") == "{t}.internal"
    with pytest.raises(ValueError, match=r"'\{t\}\.a\.\.b' is not a host"):
        check_authority("{t}.a..b", "x.a..b")
