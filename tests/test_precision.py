"""The precision vocabulary's one owner: parsers, names and the bit widths each stage accepts."""

from __future__ import annotations

import pytest

from exitspace.errors import ConfigError
from exitspace.precision import COST_BITS, TRAINED_BITS, check_pair, pair_key, pair_label, pair_slug, parse_pair
from exitspace.workload.layer import Precision


def test_parse_pair_accepts_both_float_spellings() -> None:
    assert parse_pair("8/4") == (8, 4) and parse_pair("32/32") == (32, 32)
    assert parse_pair("FP32/8") == (32, 8) == parse_pair("float/8")
    assert parse_pair("8", one_means_both=True) == (8, 8)


@pytest.mark.parametrize("bad", ["8", "8/x", "16/8", "8/4/2", "/8"])
def test_parse_pair_refuses_in_one_line(bad: str) -> None:
    with pytest.raises(ConfigError, match="precision pair") as info:
        parse_pair(bad)
    assert "\n" not in str(info.value)


def test_cost_bits_are_wider_than_trained_bits() -> None:
    assert parse_pair("16/1", "--bits", COST_BITS) == (16, 1)
    assert 16 not in TRAINED_BITS
    with pytest.raises(ConfigError, match="--bits: bit width 33"):
        parse_pair("33/8", "--bits", COST_BITS)


def test_names_round_trip() -> None:
    for pair in ((8, 4), (32, 32), (4, 8)):
        assert parse_pair(pair_label(pair)) == pair == parse_pair(pair_key(pair))
    assert (pair_label((32, 8)), pair_key((32, 8)), pair_slug((32, 8))) == ("FP32/8", "32/8", "b32_e8")
    assert check_pair([8, 8]) == (8, 8)


def test_float_accumulates_in_32_bits() -> None:
    assert Precision.uniform(8).psum == 16 and Precision.uniform(32).psum == 32
