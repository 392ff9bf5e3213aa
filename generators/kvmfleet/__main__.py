from kvmfleet.cli import entry

entry()
