# The kvmfleet generator (generators/kvmfleet), built from this repository.
{
  lib,
  python3Packages,
}:
let
  root = ../..;
  # generators/ without bytecode and setuptools' build metadata
  sources = lib.fileset.fileFilter (file: !file.hasExt "pyc") (root + "/generators");
  eggInfo = lib.fileset.maybeMissing (root + "/generators/kvmfleet.egg-info");
in
python3Packages.buildPythonApplication {
  pname = "kvmfleet";
  version = (lib.importTOML (root + "/pyproject.toml")).project.version;
  pyproject = true;

  # Only what setuptools reads, so that edits elsewhere do not rebuild it.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/pyproject.toml")
      (lib.fileset.maybeMissing (root + "/README.md"))
      (lib.fileset.difference sources eggInfo)
    ];
  };

  build-system = [ python3Packages.setuptools ];
  dependencies = with python3Packages; [
    pydantic
    tomlkit
    tzdata
    pyyaml
    (callPackage ../python-cs/package.nix { })
  ];

  # The test suite runs as the flake's `pytest` check.
  pythonImportsCheck = [ "kvmfleet" ];

  meta = {
    description = "Turn a TOML inventory of KVM hypervisors into pure-data NixOS host modules";
    license = lib.licenses.asl20;
    mainProgram = "kvmfleet";
  };
}
