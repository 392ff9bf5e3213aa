# The Apache CloudStack KVM agent, built from the Apache source release with
# Maven and Java 17. Only the KVM hypervisor plugin and what it needs are built
# (-pl plugins/hypervisors/kvm -am), plus the system VM files the agent copies
# into system VMs (-Psystemvm). Layout, as the agent and the management server
# expect it under /usr/share (services.cloudstack-agent links those paths here):
#
#   share/cloudstack-agent/lib/        the KVM plugin and every jar it needs
#   share/cloudstack-agent/conf/       default agent.properties, environment.properties, log4j
#   share/cloudstack-agent/lib/libvirtqemuhook, rolling-maintenance
#   share/cloudstack-common/scripts/   the shell and Python scripts the agent runs
#   share/cloudstack-common/vms/       system VM payload (agent.zip, cloud-scripts.tgz, ...)
#   share/cloudstack-common/python-site/   cloudutils, cloud_utils (also in passthru.python)
#
# The launcher (java, class path, JNA library path) is the NixOS service's: it
# depends on the libvirt and Ceph packages the host configuration chooses.
# cloudstack-setup-agent is not upstream's (that one detects the distribution
# and edits /etc/libvirt): see pkgs/cloudstack-agent-config.
{
  lib,
  fetchurl,
  maven,
  jdk17_headless,
  makeWrapper,
  bash,
  python3,
  coreutils,
  gawk,
  gnugrep,
  gnused,
  iproute2,
  net-tools,
  openssl,
  cloudstack-agent-config,
}:
let
  version = "4.22.1.1";

  # The LTS release with the fix for CVE-2026-50112. Apache publishes a SHA-512
  # next to the tarball (….tar.bz2.sha512); it could not be read here, so the
  # hash is a placeholder: replace it with `sha512 = "<that value>";`.
  src = fetchurl {
    urls = [
      "https://downloads.apache.org/cloudstack/releases/${version}/apache-cloudstack-${version}-src.tar.bz2"
      "https://archive.apache.org/dist/cloudstack/releases/${version}/apache-cloudstack-${version}-src.tar.bz2"
    ];
    hash = lib.fakeHash;
  };

  # engine/schema (in the reactor through the KVM plugin's dependencies)
  # downloads this list of system VM template checksums at build time; the
  # sandbox has no network, so it is fetched here. No published hash to cite:
  # placeholder until a build reports it.
  systemvmChecksums = fetchurl {
    url = "https://download.cloudstack.org/systemvm/${lib.versions.majorMinor version}/sha512sum.txt";
    hash = lib.fakeHash;
  };

  # CloudStack's own Python modules (python/lib: cloudutils, cloud_utils), which the qemu hook
  # and security_group.py import. Debian's packages copy them into the system's site-packages;
  # here they are a package of the scripts' interpreter, so that no path needs patching.
  cloudutils = python3.pkgs.buildPythonPackage {
    pname = "cloudstack-cloudutils";
    inherit version src;
    format = "other";
    dontBuild = true;
    installPhase = ''
      runHook preInstall
      mkdir -p $out/${python3.sitePackages}
      cp -r python/lib/cloudutils python/lib/cloud_utils.py $out/${python3.sitePackages}/
      runHook postInstall
    '';
  };

  # The scripts' interpreter (patchShebangs points them here): security_group.py and the qemu
  # hook import these.
  python = python3.withPackages (ps: [
    ps.libvirt
    ps.netaddr
    cloudutils
  ]);

  # uefi.properties (agent/conf/uefi.properties.in; Debian's values name /usr/share/OVMF): NixOS's
  # libvirtd links the firmware images QEMU ships, as its firmware descriptors name them, under
  # /run/libvirt/nix-ovmf (nixos/modules/virtualisation/libvirtd.nix, libvirtd-config).
  uefi = {
    "guest.loader.legacy" = "/run/libvirt/nix-ovmf/edk2-x86_64-code.fd";
    "guest.nvram.template.legacy" = "/run/libvirt/nix-ovmf/edk2-i386-vars.fd";
    "guest.loader.secure" = "/run/libvirt/nix-ovmf/edk2-x86_64-secure-code.fd";
    "guest.nvram.template.secure" = "/run/libvirt/nix-ovmf/edk2-i386-vars.fd";
    "guest.nvram.path" = "/var/lib/libvirt/qemu/nvram/";
  };

  # What keystore-setup / keystore-cert-import call. The management server runs
  # them over SSH by absolute path, with a login shell's PATH; cloudstack-setup-agent
  # (called by keystore-cert-import) comes with them.
  keystoreTools = [
    jdk17_headless
    openssl
    iproute2
    net-tools
    gawk
    gnugrep
    gnused
    coreutils
    cloudstack-agent-config
  ];
in
maven.buildMavenPackage {
  pname = "cloudstack-agent";
  inherit version src;

  mvnJdk = jdk17_headless;
  # The fixed-output hash of the Maven dependencies cannot be computed here
  # (no network, no build): placeholder; the first build prints the real one.
  mvnHash = lib.fakeHash;

  # Tests are compiled (modules use each other's test jars) but not run.
  doCheck = false;

  # The same for the dependency download and the offline build.
  mvnParameters = lib.escapeShellArgs [
    "-pl"
    "plugins/hypervisors/kvm,systemvm"
    "-am"
    "-Psystemvm"
    "-Ddownload.plugin.skip=true"
    "-Dcheckstyle.skip=true"
  ];

  nativeBuildInputs = [ makeWrapper ];
  nativeInstallCheckInputs = [ python3 ];
  # patchShebangs resolves the scripts' interpreters from these.
  buildInputs = [
    bash
    python
  ];

  postPatch = ''
    install -Dm644 ${systemvmChecksums} engine/schema/dist/systemvm-templates/sha512sum.txt

    # Values substituted into the agent's configuration templates: Debian's layout.
    cp packaging/debian/replace.properties build/replace.properties
    echo "VERSION=${version}" >> build/replace.properties

    # NixOS has no /bin/bash: commands run "bash" from the agent's PATH. The same
    # jars run inside the Debian system VMs, where that resolves too.
    # Like --replace-fail: a release without the string fails the build (review the patch).
    files=$(grep -rl --include='*.java' --exclude-dir=test -F '"/bin/bash"' . || true)
    [ -n "$files" ] || { echo 'no "/bin/bash" in the Java sources: review this patch' >&2; exit 1; }
    echo "$files" | xargs sed -i 's|"/bin/bash"|"bash"|g'

    # Config drives are built on the host with genisoimage, found on PATH.
    substituteInPlace engine/storage/configdrive/src/main/java/org/apache/cloudstack/storage/configdrive/ConfigDriveBuilder.java \
      --replace-fail 'getFile("/usr/bin/genisoimage")' \
                     'getFile(Script.getExecutableAbsolutePath("genisoimage"))'
  '';

  installPhase = ''
    runHook preInstall

    agent=$out/share/cloudstack-agent
    common=$out/share/cloudstack-common
    transformed=agent/target/transformed

    install -Dm644 -t $agent/lib \
      plugins/hypervisors/kvm/target/cloud-plugin-hypervisor-kvm-${version}.jar \
      plugins/hypervisors/kvm/target/dependencies/*.jar
    install -Dm755 -t $agent/lib $transformed/libvirtqemuhook $transformed/rolling-maintenance
    install -Dm644 -t $agent/conf \
      $transformed/agent.properties \
      $transformed/environment.properties \
      $transformed/log4j-cloud.xml
    # Upstream's keys, NixOS's paths: the build fails if the release has other keys.
    keys=$(grep -v '^#' $transformed/uefi.properties | grep = | cut -d= -f1 | sort | tr '\n' ' ')
    if [ "$keys" != "${lib.concatStringsSep " " (lib.attrNames uefi)} " ]; then
      echo "uefi.properties has the keys $keys; package.nix sets ${toString (lib.attrNames uefi)}" >&2
      exit 1
    fi
    cat > $agent/conf/uefi.properties <<EOF
    ${lib.concatStrings (lib.mapAttrsToList (k: v: "${k}=${v}\n") uefi)}EOF

    mkdir -p $common
    cp -r scripts $common/scripts
    install -Dm644 -t $common/vms systemvm/dist/*
    # Upstream's layout; the scripts import these from passthru.python.
    mkdir -p $common/python-site
    cp -r python/lib/cloudutils python/lib/cloud_utils.py $common/python-site/

    # keystore-cert-import links the certificates for libvirt only where
    # /etc/libvirt/libvirtd.conf exists, under /etc/pki. On NixOS libvirt reads
    # its configuration and client certificates from /var/lib (its sysconfdir).
    substituteInPlace $common/scripts/util/keystore-cert-import \
      --replace-fail 'LIBVIRTD_FILE="/etc/libvirt/libvirtd.conf"' 'LIBVIRTD_FILE="/var/lib/libvirt/qemu.conf"' \
      --replace-fail '/etc/pki/' '/var/lib/pki/'
    substituteInPlace $common/scripts/util/keystore-setup \
      --replace-fail 'LIBVIRTD_FILE="/etc/libvirt/libvirtd.conf"' 'LIBVIRTD_FILE="/var/lib/libvirt/qemu.conf"'
    for script in keystore-setup keystore-cert-import; do
      wrapProgram $common/scripts/util/$script --prefix PATH : ${lib.makeBinPath keystoreTools}
    done

    install -Dm644 -t $out/share/doc/cloudstack-agent LICENSE NOTICE

    runHook postInstall
  '';

  # What the host needs of the installed files, checked where a patch or a convention could
  # silently miss: the Python scripts run the interpreter that has cloudutils, and every command
  # the agent's scripts run is on the agent's PATH (path.toml) or allowlisted there.
  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    for script in $out/share/cloudstack-agent/lib/libvirtqemuhook \
        $out/share/cloudstack-common/scripts/vm/network/security_group.py; do
      head -n1 "$script" | grep -qF '#!${python}/bin/python' \
        || { echo "$script: shebang $(head -n1 "$script") is not ${python}" >&2; exit 1; }
    done
    python3 ${./agent_path.py} scripts --data ${./path.toml} --root $out/share
    runHook postInstallCheck
  '';

  passthru = {
    jre = jdk17_headless;
    inherit python uefi;
    pathData = ./path.toml;
  };

  meta = {
    description = "Apache CloudStack KVM agent";
    homepage = "https://cloudstack.apache.org/";
    changelog = "https://github.com/apache/cloudstack/releases/tag/${version}";
    license = lib.licenses.asl20;
    platforms = [ "x86_64-linux" ];
  };
}
