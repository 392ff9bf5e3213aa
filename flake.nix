{
  description = "kvmfleet: NixOS for CloudStack KVM hosts from a TOML inventory";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # Partitions a host's disk at install time from the layout in its generated module.
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # Rollout: colmenaHive is built by this colmena's lib.makeHive (colmena 0.5+).
    colmena = {
      url = "github:zhaofengli/colmena";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.stable.follows = "nixpkgs";
    };
    # Secrets: encrypted files in secrets/, decrypted on each host with its SSH host key
    # (modules/secrets.nix, docs/secrets.md).
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      disko,
      colmena,
      sops-nix,
      ...
    }:
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
      generated = name: ./hosts + "/${name}/generated.nix";

      # The modules of one host, for nixosConfigurations and the colmena hive alike.
      hostModules =
        name:
        let
          hardware = ./hosts + "/${name}/hardware.nix";
          # its encrypted secrets (`kvmfleet secrets edit <name>`); used when the generated
          # module enables kvmfleet.secrets
          secrets = ./secrets + "/${name}.yaml";
        in
        [
          self.nixosModules.default
          disko.nixosModules.disko
          (generated name)
        ]
        ++ lib.optional (builtins.pathExists hardware) hardware
        ++ lib.optional (builtins.pathExists secrets) { kvmfleet.secrets.sopsFile = secrets; };

      # Every host of a platform evaluates against one shared pkgs: a pkgs of its own costs
      # each host seconds and hundreds of MB of evaluation (see docs/fleet-evaluation.md, "Fleet-scale
      # evaluation"). With nixpkgs.pkgs set NixOS ignores nixpkgs.hostPlatform, so the
      # platform is read from the generated module (plain data) and checked; nixpkgs'
      # own assertion rejects a per-host nixpkgs.config. bench/eval_fleet.py turns this off
      # in a copy of the flake to measure the difference.
      sharePkgs = true;
      platformOf = name: (import (generated name)).nixpkgs.hostPlatform or system;
      sharedPkgs =
        name:
        { config, pkgs, ... }:
        {
          nixpkgs.pkgs = nixpkgs.legacyPackages.${platformOf name};
          assertions = [
            {
              assertion = config.nixpkgs.hostPlatform.system == pkgs.stdenv.hostPlatform.system;
              message =
                "nixpkgs.hostPlatform is ${config.nixpkgs.hostPlatform.system} but the flake "
                + "gave this host the pkgs of ${pkgs.stdenv.hostPlatform.system} "
                + "(from hosts/${name}/generated.nix): set the platform there only";
            }
          ];
        };
      mkHost =
        name:
        lib.nixosSystem {
          modules = hostModules name ++ lib.optional sharePkgs (sharedPkgs name);
        };

      # colmena: the same modules per host, plus where and under which tags to deploy it
      # (kvmfleet.deploy, set by the generated module). Colmena's evaluator gives every node
      # meta.nixpkgs' config and overlays as nixpkgs.config/overlays, so each node would import
      # nixpkgs again (measured: as costly as no sharing at all), and nixpkgs forbids a
      # nixpkgs.config beside nixpkgs.pkgs. meta.nixpkgs is the plain legacyPackages below,
      # which already has both applied: the nodes drop them and share the flake's pkgs.
      # kvmfleet.deploy.targetHost null means the node's name: colmena itself reads a null
      # deployment.targetHost as "local deployment only" and skips the node on `apply`
      # (src/nix/hive/options.nix), so the name is written out. checks.colmena-targets proves it.
      deployment =
        name:
        { config, ... }:
        {
          deployment = {
            targetHost =
              if config.kvmfleet.deploy.targetHost != null then config.kvmfleet.deploy.targetHost else name;
            inherit (config.kvmfleet.deploy) tags;
          };
        };
      colmenaNode = name: {
        imports = hostModules name ++ [
          (deployment name)
          (sharedPkgs name)
          {
            nixpkgs.config = lib.mkForce { };
            nixpkgs.overlays = lib.mkForce [ ];
            # What lib.nixosSystem adds and colmena's plain eval-config.nix does not: with them
            # a node's toplevel is the very derivation nixosConfigurations.<name> builds.
            nixpkgs.flake.source = nixpkgs.outPath;
            system.nixos.versionSuffix = lib.trivial.versionSuffix;
            system.nixos.revision = lib.trivial.revisionWithDefault null;
          }
        ];
      };
      otherPlatformHosts = lib.filter (name: platformOf name != system) hostNames;

      python = pkgs.python3.withPackages (ps: [
        ps.pydantic
        ps.tomlkit
        ps.tzdata
        ps.pyyaml
        (ps.callPackage ./pkgs/python-cs/package.nix { })
        ps.pytest
        ps.hypothesis
        # rather than pkgs.mypy, so that the pydantic.mypy plugin is importable
        ps.mypy
        ps.types-requests
        ps.types-pyyaml
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

      # `colmena apply --on @cluster-1`: colmena 0.5+ reads colmenaHive, colmena 0.4 (nixpkgs)
      # the plain attribute set (with --impure on current Nix).
      colmena = {
        meta = {
          nixpkgs = nixpkgs.legacyPackages.${system};
          nodeNixpkgs = lib.genAttrs otherPlatformHosts (name: nixpkgs.legacyPackages.${platformOf name});
        };
      }
      // lib.genAttrs hostNames colmenaNode;
      colmenaHive = colmena.lib.makeHive self.colmena;

      # For evaluation by parallel, memory-bounded workers (Hydra, buildbot-nix, nix-eval-jobs,
      # nix-fast-build): every host's toplevel (all platforms) and every VM test, named as in
      # checks. Flat on purpose: nix-eval-jobs skips nested sets without recurseForDerivations,
      # and `nix flake check` rejects that attribute in hydraJobs (it expects only sets there).
      hydraJobs =
        lib.mapAttrs' (
          name: host: lib.nameValuePair "toplevel-${name}" host.config.system.build.toplevel
        ) self.nixosConfigurations
        // lib.filterAttrs (name: _: lib.hasPrefix "vm-" name) self.checks.${system};

      # modules/<name>.nix -> nixosModules.<name>. modules/secrets.nix sets sops-nix's options:
      # a module file cannot reach a flake input, so the flake imports sops-nix beside it.
      nixosModules = import ./lib/module-files.nix ./modules // {
        default = {
          imports = [
            ./modules/default.nix
            sops-nix.nixosModules.sops
          ];
        };
        secrets = {
          imports = [
            ./modules/secrets.nix
            sops-nix.nixosModules.sops
          ];
        };
      };

      packages.${system} = {
        kvmfleet = pkgs.callPackage ./pkgs/kvmfleet/package.nix { };
        cephfs-du = pkgs.callPackage ./pkgs/cephfs-du/package.nix { };
        iscsi-ifaces = pkgs.callPackage ./pkgs/iscsi-ifaces/package.nix { };
        bond-macs = pkgs.callPackage ./pkgs/bond-macs/package.nix { };
        cloudstack-agent-config = pkgs.callPackage ./pkgs/cloudstack-agent-config/package.nix { };
        cloudstack-agent = pkgs.callPackage ./pkgs/cloudstack-agent/package.nix {
          inherit (self.packages.${system}) cloudstack-agent-config;
        };
        default = self.packages.${system}.kvmfleet;
        # the pinned disko, for `nix run .#disko` in install plans
        disko = disko.packages.${system}.disko;
        # the NixOS minimal ISO with this flake, kvmfleet and disko; see installer/iso.nix
        installer-iso =
          (lib.nixosSystem {
            specialArgs.fleet = self;
            modules = [
              "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"
              ./installer/iso.nix
              { nixpkgs.hostPlatform = system; }
            ];
          }).config.system.build.isoImage;
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

      checks.${system} =
        import ./checks {
          inherit
            self
            pkgs
            lib
            src
            python
            ;
        }
        // {
          # Evaluated by `nix flake check --no-build` (and eval-flake): every node of the hive has a
          # real deployment.targetHost, also a node whose kvmfleet.deploy sets none (no [deploy], no
          # CloudStack NIC, no domain), read back from colmena's own deploymentConfig.
          colmena-targets =
            let
              bareHive = colmena.lib.makeHive {
                meta.nixpkgs = nixpkgs.legacyPackages.${system};
                bare.imports = [
                  self.nixosModules.default
                  (deployment "bare")
                ];
              };
              targets = lib.mapAttrs (_: d: d.targetHost) (
                self.colmenaHive.deploymentConfig // bareHive.deploymentConfig
              );
              missing = lib.attrNames (lib.filterAttrs (_: t: t == null) targets);
            in
            assert lib.assertMsg (
              missing == [ ]
            ) "colmena would skip ${toString missing}: deployment.targetHost is null (local only)";
            assert lib.assertMsg (
              targets.bare == "bare"
            ) "a node without kvmfleet.deploy.targetHost deploys to ${toString targets.bare}, not its name";
            pkgs.writeText "colmena-targets.json" (builtins.toJSON targets);
        };
    };
}
