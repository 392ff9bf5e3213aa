"""The capability contract: every capability is one column (model, capability, tables it owns), the
registry covers the whole `Host` model, and capabilities' settings merge as NixOS modules do."""

from __future__ import annotations

import importlib
import re
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo

from conftest import REPO, SSH_KEY, findings_of, host_toml
from kvmfleet.capabilities import REGISTRY
from kvmfleet.capability import Capability, HostContext, Identity, merge_settings, must_choose
from kvmfleet.model import Host
from kvmfleet.model.base import ROLES
from kvmfleet.model.introspect import unwrap
from kvmfleet.model.types import Constraint
from kvmfleet.site import check_site

PACKAGE = REPO / "generators" / "kvmfleet"


def test_every_host_field_is_owned_by_exactly_one_capability() -> None:
    owners: dict[str, list[str]] = {}
    for cap in REGISTRY:
        for table in cap.tables:
            owners.setdefault(table, []).append(cap.name)
    assert set(owners) == set(Host.model_fields), "tables without a Host field, or fields unowned"
    assert {table: names for table, names in owners.items() if len(names) != 1} == {}


def test_capability_names_are_unique() -> None:
    names = [cap.name for cap in REGISTRY]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("cap", REGISTRY, ids=lambda c: c.name)
def test_each_capability_is_a_column(cap: Capability) -> None:
    assert (PACKAGE / "model" / f"{cap.name}.py").is_file()
    module_file = PACKAGE / "capabilities" / f"{cap.name}.py"
    package_file = PACKAGE / "capabilities" / cap.name / "__init__.py"
    assert module_file.is_file() or package_file.is_file()
    # The registry entry is the one its own file exports.
    module = importlib.import_module(f"kvmfleet.capabilities.{cap.name}")
    assert module.CAPABILITY is cap
    # Its tables are modelled in its own model file.
    for table in cap.tables:
        for model in _models(Host.model_fields[table].annotation):
            assert model.__module__ == f"kvmfleet.model.{cap.name}", (table, model)


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    inner = unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        yield inner
        return
    for arg in typing.get_args(inner):
        yield from _models(arg)


def _all_fields() -> Iterator[tuple[str, FieldInfo]]:
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Host]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for key, field in model.model_fields.items():
            yield f"{model.__module__}.{model.__name__}.{key}", field
            todo.extend(_models(field.annotation))


def test_every_model_field_has_a_description() -> None:
    assert [name for name, field in _all_fields() if not field.description] == []


def _validators(annotation: Any) -> Iterator[Any]:
    for arg in typing.get_args(annotation):
        if isinstance(arg, AfterValidator):
            yield arg.func
        elif not isinstance(arg, type) or not issubclass(arg, BaseModel):
            yield from _validators(arg)
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, AfterValidator):
            yield meta.func


def test_every_constrained_type_names_its_kind() -> None:
    """The reference describes a constrained type by the kind its validator carries."""
    unnamed = [
        (name, func)
        for name, field in _all_fields()
        for func in [
            *_validators(field.annotation),
            *(m.func for m in field.metadata if isinstance(m, AfterValidator)),
        ]
        if not (isinstance(func, Constraint) and func.kind)
    ]
    assert unnamed == []


def test_the_role_enum_of_modules_base_nix_is_the_models() -> None:
    text = (REPO / "modules" / "base.nix").read_text()
    match = re.search(
        r"roles = mkOption \{\s*type = types\.listOf \(\s*types\.enum \[([^\]]*)\]", text
    )
    assert match, "kvmfleet.roles enum not found in modules/base.nix"
    assert tuple(re.findall(r'"([^"]*)"', match[1])) == ROLES


# --- merging settings ----------------------------------------------------------------------------


def test_attribute_sets_merge_recursively() -> None:
    out: dict[str, Any] = {}
    merge_settings(out, {"boot": {"kernel": {"sysctl": {"a": 1}}}}, "one")
    merge_settings(out, {"boot": {"kernel": {"sysctl": {"b": 2}}, "loader": {"x": True}}}, "two")
    assert out == {"boot": {"kernel": {"sysctl": {"a": 1, "b": 2}}, "loader": {"x": True}}}


def test_lists_concatenate_in_order_without_duplicates() -> None:
    out: dict[str, Any] = {}
    merge_settings(out, {"keys": ["a", "b"]}, "one")
    merge_settings(out, {"keys": ["b", "c", {"x": 1}]}, "two")
    merge_settings(out, {"keys": [{"x": 1}, "d"]}, "three")
    assert out == {"keys": ["a", "b", "c", {"x": 1}, "d"]}


def test_equal_scalars_agree() -> None:
    out: dict[str, Any] = {"networking": {"nftables": {"enable": True}}}
    merge_settings(out, {"networking": {"nftables": {"enable": True}}}, "two")
    assert out == {"networking": {"nftables": {"enable": True}}}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a", "b"),
        (1, 2),
        (True, 1),  # equal in Python, different in Nix
        (["a"], "a"),
        ({"a": 1}, ["a"]),
        (None, False),
    ],
)
def test_two_different_values_are_a_kvmfleet_bug(first: Any, second: Any) -> None:
    out: dict[str, Any] = {}
    merge_settings(out, {"time": {"timeZone": first}}, "one")
    with pytest.raises(RuntimeError, match=r"capability two sets time\.timeZone"):
        merge_settings(out, {"time": {"timeZone": second}}, "two")


def test_merging_never_changes_a_capabilitys_data() -> None:
    first = {"keys": ["a"], "nested": {"x": [1]}}
    out: dict[str, Any] = {}
    merge_settings(out, first, "one")
    merge_settings(out, {"keys": ["b"], "nested": {"x": [2], "y": 3}}, "two")
    assert first == {"keys": ["a"], "nested": {"x": [1]}}


# --- identities and pitfalls ---------------------------------------------------------------------


def test_an_identity_is_cleared_unless_its_capability_renews_it() -> None:
    identity = Identity("IP address", "10.0.0.1", ("network",))
    assert identity.renew is must_choose
    assert identity.renew("kvm01", "kvm03") is None
    # How it is renewed is not part of what the value is.
    assert identity == Identity("IP address", "10.0.0.1", ("network",), lambda a, b: "x")


def test_pitfalls_run_on_every_site_layer() -> None:
    nested = {"net": {"ipv4": {"tcp_retries2": 8}}}
    site = {"sysctl": nested, "roles": {"hypervisor": {"sysctl": nested}}}
    problems = check_site(site, "hosts/site.toml")
    located = {(p.path, p.message.startswith("a sysctl name with dots")) for p in problems}
    assert (("sysctl", "net"), True) in located
    assert (("roles", "hypervisor", "sysctl", "net"), True) in located


def test_a_capability_without_settings_has_defaults_for_the_rest() -> None:
    cap = Capability("example", ("example",), None)
    ctx = HostContext("h", _any_host())
    assert list(cap.findings(ctx)) == []
    assert list(cap.identities(ctx)) == []
    assert list(cap.pitfalls({"example": {}})) == []


def _any_host() -> Host:
    return Host.model_validate(
        {
            "host": {"state_version": "26.05"},
            "boot": {"loader": "systemd-boot"},
            "disk": {"device": "/dev/sda", "table": "gpt"},
        }
    )


def _literals(annotation: Any) -> Iterator[tuple[Any, ...]]:
    if typing.get_origin(annotation) is typing.Literal:
        yield typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if not isinstance(arg, type) or not issubclass(arg, BaseModel):
            yield from _literals(arg)


def test_no_model_uses_a_literal_of_numbers() -> None:
    """`Literal[0, 1]` accepts `true` as 1 even in strict mode: numbers use `one_of`."""
    numeric = [
        (name, choices)
        for name, field in _all_fields()
        for choices in _literals(field.annotation)
        if any(not isinstance(choice, str) for choice in choices)
    ]
    assert numeric == []


# --- declarations: secret files and service users ------------------------------------------------

# Secret files kvmfleet's own commands read on the administrator's machine, not on the host.
_ADMIN_SIDE_SECRETS = {("cloudstack", "api", "password_file")}


def _secret_file_values(model: BaseModel, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], str]:
    """Every value of a field typed as a secret file, by key path, found by walking the model."""
    found: dict[tuple[Any, ...], str] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*path, name)
        if isinstance(value, str) and _is_secret_file(info.annotation, info.metadata):
            found[here] = value
        elif isinstance(value, BaseModel):
            found.update(_secret_file_values(value, here))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    found.update(_secret_file_values(item, (*here, key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.update(_secret_file_values(item, (*here, index)))
    return found


def _is_secret_file(annotation: Any, metadata: list[Any]) -> bool:
    """Whether a field's type (possibly `X | None`) is the SecretFile constrained type."""

    def kinds(tp: Any) -> Iterator[str]:
        for meta in getattr(tp, "__metadata__", ()):
            if isinstance(getattr(meta, "func", None), Constraint):
                yield meta.func.kind
        for arg in typing.get_args(tp):
            yield from kinds(arg)

    found = [*kinds(annotation)]
    found += [m.func.kind for m in metadata if isinstance(getattr(m, "func", None), Constraint)]
    return any(kind.startswith("path to a secret file") for kind in found)


def _host_with_every_secret() -> Host:
    import copy

    from kvmfleet.inventory import load

    (kvm01,) = load(REPO, ["kvm01"]).hosts  # merged over site.toml
    data = copy.deepcopy(kvm01.data)
    data["host"]["root_password_file"] = "/var/lib/secrets/root.hash"
    data["users"] = {"ops": {"hashed_password_file": "/var/lib/secrets/ops.hash"}}
    data["iscsi"]["targets"][0]["chap_secret_file"] = "/var/lib/secrets/iscsi/chap"
    data["quassel"] = {"listen": ["::1"], "certificate_file": "/var/lib/secrets/quassel.pem"}
    return Host.model_validate(data)


def test_every_secret_file_key_is_declared_by_its_capability() -> None:
    """Provisioning (sops-nix) and the secret checks read the capabilities' declarations: a
    secret-file key that no capability declares would silently be left out of both."""
    from kvmfleet.capabilities import secret_files

    host = _host_with_every_secret()
    in_model = {
        path: value
        for path, value in _secret_file_values(host).items()
        if path not in _ADMIN_SIDE_SECRETS
    }
    assert len(in_model) == 5, in_model  # the walk finds what the host above sets
    declared = {s.path: s.file for s in secret_files(HostContext("kvm01", host))}
    assert declared == in_model


def test_each_secret_file_is_declared_by_the_capability_that_owns_its_table() -> None:
    host = _host_with_every_secret()
    for cap in REGISTRY:
        for secret in cap.secret_files(HostContext("kvm01", host)):
            assert secret.path[0] in cap.tables, (cap.name, secret.path)


def test_password_hashes_are_read_before_users_and_quassels_key_by_its_service() -> None:
    from kvmfleet.capabilities import secret_files

    by_path = {s.path: s for s in secret_files(HostContext("kvm01", _host_with_every_secret()))}
    assert by_path[("host", "root_password_file")].before_users
    assert by_path[("users", "ops", "hashed_password_file")].before_users
    assert not by_path[("ceph", "keyring_file")].before_users
    assert by_path[("quassel", "certificate_file")].owner == "quassel"


@pytest.mark.parametrize("user", ["cups", "quassel", "ceph", "qemu-libvirtd"])
def test_a_service_user_of_any_capability_is_no_inventory_user(user: str) -> None:

    text = host_toml(extra=f'[users.{user}]\nauthorized_keys = ["{SSH_KEY}"]\n')
    assert (
        f'users.{user}: "{user}" is a system user that NixOS or a service defines; '
        in "\n".join(findings_of(text, "users"))
    )


def test_service_users_are_declared_by_capabilities() -> None:
    from kvmfleet.capabilities import SERVICE_USERS

    owners = {user: cap.name for cap in REGISTRY for user in cap.service_users}
    assert owners["cups"] == "printing" and owners["quassel"] == "quassel"
    assert set(owners) == SERVICE_USERS
