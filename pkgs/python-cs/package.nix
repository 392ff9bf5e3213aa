# cs, the CloudStack API client `kvmfleet cloudstack` uses (not in nixpkgs).
{
  lib,
  buildPythonPackage,
  fetchPypi,
  hatchling,
  requests,
}:
buildPythonPackage rec {
  pname = "cs";
  version = "5.2.0";
  pyproject = true;

  src = fetchPypi {
    inherit pname version;
    # sha256 of cs-5.2.0.tar.gz as pip downloaded it (see docs/verification.md, "Not verified here").
    hash = "sha256-3TV/xtU4giY0hF9eIWy7BP6Vzt8MXt9ye9wrxARNzcY=";
  };

  build-system = [ hatchling ];
  dependencies = [ requests ];

  pythonImportsCheck = [ "cs" ];

  meta = {
    description = "CloudStack API client";
    homepage = "https://github.com/ngine-io/cs";
    license = lib.licenses.bsd3;
  };
}
