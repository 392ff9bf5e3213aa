"""kvmfleet: a TOML inventory of KVM hypervisors -> pure-data NixOS host modules."""

__version__ = "0.1.0"
