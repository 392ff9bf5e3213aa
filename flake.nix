{
  description = "kvmfleet: NixOS for CloudStack KVM hypervisors (and lab ThinkPads) from a TOML inventory";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # Partitioning for `nixos-install`; not used by any output yet.
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

      # The repository without VCS data and tool caches, for the checks.
      src = lib.cleanSourceWith {
        src = lib.cleanSource ./.;
        filter =
          path: _:
          !builtins.elem (baseNameOf path) [
            "__pycache__"
            ".pytest_cache"
            ".mypy_cache"
            ".ruff_cache"
            ".hypothesis"
          ];
      };

      # hosts/<name>/ with a generated.nix (a new one must be `git add`ed to be seen).
      hostNames = builtins.filter (name: builtins.pathExists (./hosts + "/${name}/generated.nix")) (
        lib.attrNames (lib.filterAttrs (_: type: type == "directory") (builtins.readDir ./hosts))
      );
      mkHost =
        name:
        let
          dir = ./hosts + "/${name}";
        in
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            (dir + "/generated.nix")
          ]
          ++ lib.optional (builtins.pathExists (dir + "/hardware.nix")) (dir + "/hardware.nix");
        };

      # modules/<name>.nix -> nixosModules.<name>
      moduleFiles = lib.filterAttrs (
        name: type: type == "regular" && lib.hasSuffix ".nix" name && name != "default.nix"
      ) (builtins.readDir ./modules);

      python = pkgs.python3.withPackages (ps: [
        ps.pydantic
        ps.tomlkit
        ps.pytest
        ps.hypothesis
        # here rather than pkgs.mypy, so that the pydantic.mypy plugin is importable
        ps.mypy
      ]);

      generate = pkgs.writeShellApplication {
        name = "kvmfleet-generate";
        runtimeInputs = [ self.packages.${system}.kvmfleet ];
        # runs in the user's checkout
        text = ''exec kvmfleet generate "$@"'';
      };
    in
    {
      nixosConfigurations = lib.genAttrs hostNames mkHost;

      nixosModules = {
        default = ./modules/default.nix;
      }
      // lib.mapAttrs' (
        name: _: lib.nameValuePair (lib.removeSuffix ".nix" name) (./modules + "/${name}")
      ) moduleFiles;

      packages.${system} = {
        kvmfleet = pkgs.callPackage ./pkgs/kvmfleet/package.nix { };
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

      # `nix fmt`: nixfmt (RFC 166) over the tree; tests/ holds fixtures.
      formatter.${system} = pkgs.nixfmt-tree.override {
        settings.formatter.nixfmt.excludes = [ "tests/*" ];
      };

      checks.${system} = import ./checks {
        inherit self pkgs lib src;
      };
    };
}
