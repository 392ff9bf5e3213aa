"""The Nix emitter: exact text for known values, and real Nix reads back exactly what was meant."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmfleet.nix import NixRenderError, attr_name, render, render_module, string


def test_scalars() -> None:
    assert render(None) == "null"
    assert render(True) == "true"
    assert render(False) == "false"
    assert render(42) == "42"
    assert render(-3) == "-3"
    assert render([-3]) == "[\n  (-3)\n]"


def test_strings_are_escaped() -> None:
    assert string('a"b') == '"a\\"b"'
    assert string("a\\b") == '"a\\\\b"'
    assert string("${x}") == '"\\${x}"'
    assert string("$x {y}") == '"$x {y}"'
    assert string("tab\there") == '"tab\\there"'
    assert string("no newline at end\nx") == '"no newline at end\\nx"'


def test_multiline_strings_use_indented_form() -> None:
    text = "line one\n  indented ${x} ''quoted''\n\nlast\n"
    expected = "{\n  s = ''\n    line one\n      indented ''${x} '''quoted'''\n\n    last\n  '';\n}"
    assert render({"s": text}) == expected


def test_long_values_move_after_the_equals_sign_like_nixfmt() -> None:
    long = "x" * 100
    assert render({"a": long}) == '{\n  a = "' + long + '";\n}'
    assert render({"a.b": long}) == '{\n  "a.b" =\n    "' + long + '";\n}'
    deep = {"a": {"b": {"c": {"d": {"e": long}}}}}
    assert render(deep) == '{\n  a.b.c.d.e =\n    "' + long + '";\n}'
    assert render({"k" * 95: 12345}) == "{\n  " + "k" * 95 + " =\n    12345;\n}"


def test_attribute_names() -> None:
    assert attr_name("hostName") == "hostName"
    assert attr_name("systemd-boot") == "systemd-boot"
    assert attr_name("10-san0") == '"10-san0"'
    assert attr_name("net.ipv4.tcp_retries2") == '"net.ipv4.tcp_retries2"'
    assert attr_name("or") == '"or"'
    assert attr_name("in") == '"in"'
    assert attr_name("") == '""'


def test_layout_collapses_single_key_chains() -> None:
    value = {
        "boot": {"loader": {"grub": {"enable": True, "devices": ["/dev/sda"]}}},
        "e": {},
        "l": [],
    }
    assert render_module(value) == (
        "{\n"
        "  boot.loader.grub = {\n"
        "    enable = true;\n"
        "    devices = [\n"
        '      "/dev/sda"\n'
        "    ];\n"
        "  };\n"
        "  e = { };\n"
        "  l = [ ];\n"
        "}\n"
    )


@pytest.mark.parametrize("bad", ["nul\0byte", "\ud800", 1.5, float("nan"), 2**63, -(2**63)])
def test_unrepresentable_values_are_refused(bad: Any) -> None:
    with pytest.raises(NixRenderError):
        render({"x": bad})


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(NixRenderError):
        render({1: "x"})  # type: ignore[dict-item]


def _roundtrip(nix_eval: Callable[[Path], Any], tmp_path: Path, value: Any) -> Any:
    path = tmp_path / "value.nix"
    path.write_text(render_module({"v": value}), encoding="utf-8")
    return nix_eval(path)["v"]


# Text Nix can hold: anything but NUL. Weighted towards the characters that need escaping.
_tricky = st.sampled_from(
    [
        '"',
        "\\",
        "$",
        "{",
        "}",
        "${",
        "''",
        "'",
        "\n",
        "\r",
        "\t",
        " ",
        "  ",
        "\\n",
        "é",
        "☃",
        "\U0001f600",
        "\x01",
        "\x7f",
    ]
)
nix_text = st.lists(
    st.one_of(
        _tricky,
        st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=8),
    ),
    max_size=12,
).map("".join)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    nix_text,
)
nix_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(nix_text, children, max_size=4),
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(nix_text, min_size=1, max_size=8))
def test_strings_roundtrip_through_real_nix(
    nix_eval: Callable[[Path], Any], tmp_path: Path, texts: list[str]
) -> None:
    assert _roundtrip(nix_eval, tmp_path, texts) == texts


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=nix_values)
def test_values_and_attribute_names_roundtrip_through_real_nix(
    nix_eval: Callable[[Path], Any], tmp_path: Path, value: Any
) -> None:
    assert _roundtrip(nix_eval, tmp_path, value) == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    ("text", "indented"),
    [
        ("a\n", True),
        ("\n", False),
        ("\n\n", False),
        (" leading space\n", False),
        ("   \n", False),
        ("a\n   \nb\n", False),
        ("trailing \n", False),
        ("''\n", True),
        ("'''\n", True),
        ("ends with quote'\n", True),
        ("$${x}\n", True),
        ("''${x}\n", True),
        ("x\n  y\n    z\n", True),
        ("  both\n  indented\n", False),
        ("a\nno final newline", False),
    ],
)
def test_multiline_edge_cases_roundtrip(
    nix_eval: Callable[[Path], Any], tmp_path: Path, text: str, indented: bool
) -> None:
    assert string(text).startswith("''") == indented
    assert _roundtrip(nix_eval, tmp_path, text) == text


@pytest.mark.parametrize("name", ["nul\0", "\udc80"])
def test_unrepresentable_attribute_names_are_refused(name: str) -> None:
    with pytest.raises(NixRenderError):
        render({name: 1})
