{
  description = "kvmfleet: NixOS for CloudStack KVM hosts from a TOML inventory";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # For partitioning at install time; no output uses it yet.
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    { self, nixpkgs, ... }:
    let
      inherit (nixpkgs) lib;
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};

      # The repository without VCS data, virtualenvs and tool caches, for the checks.
      caches = [
        "__pycache__"
        ".pytest_cache"
        ".mypy_cache"
        ".ruff_cache"
        ".hypothesis"
        ".benchmarks"
        ".venv"
      ];
      isCache = path: builtins.elem (baseNameOf path) caches || lib.hasSuffix ".egg-info" path;
      src = lib.cleanSourceWith {
        src = lib.cleanSource ./.;
        filter = path: _: !isCache path;
      };

      # hosts/<name>/ with host.toml and generated.nix, by the generator's rule (a new one must be
      # `git add`ed to be seen).
      hostNames = import ./lib/host-names.nix ./hosts;
      mkHost =
        name:
        let
          hardware = ./hosts + "/${name}/hardware.nix";
        in
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            (./hosts + "/${name}/generated.nix")
          ]
          ++ lib.optional (builtins.pathExists hardware) hardware;
        };

      # modules/<name>.nix -> nixosModules.<name>
      isModule = name: type: type == "regular" && lib.hasSuffix ".nix" name && name != "default.nix";
      moduleOutput = name: _: lib.nameValuePair (lib.removeSuffix ".nix" name) (./modules + "/${name}");

      python = pkgs.python3.withPackages (ps: [
        ps.pydantic
        ps.tomlkit
        ps.tzdata
        ps.pytest
        ps.hypothesis
        # rather than pkgs.mypy, so that the pydantic.mypy plugin is importable
        ps.mypy
      ]);

      # runs in the user's checkout
      generate = pkgs.writeShellApplication {
        name = "kvmfleet-generate";
        runtimeInputs = [ self.packages.${system}.kvmfleet ];
        text = ''exec kvmfleet generate "$@"'';
      };
    in
    {
      nixosConfigurations = lib.genAttrs hostNames mkHost;

      nixosModules = {
        default = ./modules/default.nix;
      }
      // lib.mapAttrs' moduleOutput (lib.filterAttrs isModule (builtins.readDir ./modules));

      packages.${system} = {
        kvmfleet = pkgs.callPackage ./pkgs/kvmfleet/package.nix { };
        cephfs-du = pkgs.callPackage ./pkgs/cephfs-du/package.nix { };
        cloudstack-agent-config = pkgs.callPackage ./pkgs/cloudstack-agent-config/package.nix { };
        cloudstack-agent = pkgs.callPackage ./pkgs/cloudstack-agent/package.nix {
          inherit (self.packages.${system}) cloudstack-agent-config;
        };
        default = self.packages.${system}.kvmfleet;
      };

      apps.${system}.generate = {
        type = "app";
        program = lib.getExe generate;
        meta.description = "Validate the inventory and write hosts/*/generated.nix";
      };

      devShells.${system}.default = pkgs.mkShell {
        packages = [
          python
          pkgs.ruff
          pkgs.nixfmt
          pkgs.nix
        ];
        # `python -m kvmfleet` and pytest use the working tree.
        shellHook = ''
          export PYTHONPATH="$PWD/generators''${PYTHONPATH:+:$PYTHONPATH}"
        '';
      };

      # `nix fmt`: nixfmt (RFC 166) over the tree, as the formatting check; tests/ holds fixtures.
      formatter.${system} = pkgs.nixfmt-tree.override {
        settings.formatter.nixfmt.excludes = [ "tests/*" ];
      };

      checks.${system} = import ./checks {
        inherit
          self
          pkgs
          lib
          src
          python
          ;
      };
    };
}
