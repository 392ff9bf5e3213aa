"""Driving a CloudStack management server from the inventory (`kvmfleet cloudstack ...`).

The `cloudstack` capability configures the agent on each host; this package talks to the management
server's API instead: fleet status, Add Host, and rolling upgrades through maintenance mode.
  client.py    typed wrapper around the `cs` library: signing, POST, errors, retries
  jobs.py      following asynchronous jobs (queryAsyncJobResult)
  records.py   the API's zone/pod/cluster/host records as typed values
  targets.py   inventory hosts with [cloudstack], their API, addresses and credentials
  status.py    `status`: CloudStack's view of each host against the inventory
  add.py       `add`: addHost with its refusals
  rolling.py   `rolling-upgrade`: one host at a time through maintenance, resumable
  deploy.py    the pluggable deploy step of a rolling upgrade
  command.py   the `kvmfleet cloudstack` command line (parser)
  actions.py   what each subcommand does: output, refusals, exit codes
"""
