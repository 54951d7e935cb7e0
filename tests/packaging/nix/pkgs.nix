# A stand-in for the few nixpkgs packages and builders the module and the package use. A
# "derivation" is an attribute set with a made-up store path; builders keep their inputs (the
# text of a file, the script of runCommand) so that the test can look at and run them. A
# package a unit's PATH may hold says which of the programs this project runs are in its
# bin/ or sbin/, as the nixpkgs package has them.
{ lib }:

let
  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  # TOML as nixpkgs' formats.toml writes it; like remarshal, it refuses a null
  tomlKey = k: if builtins.match "[A-Za-z0-9_-]+" k != null then k else builtins.toJSON k;
  tomlValue = v:
    if v == null then throw "formats.toml: TOML has no null"
    else if builtins.isAttrs v then
      "{ " + builtins.concatStringsSep ", "
        (lib.mapAttrsToList (k: x: "${tomlKey k} = ${tomlValue x}") v) + " }"
    else if builtins.isList v then "[" + builtins.concatStringsSep ", " (map tomlValue v) + "]"
    else builtins.toJSON v;
  tomlTable = prefix: set:
    let
      scalars = lib.filterAttrs (_: v: !(builtins.isAttrs v)) set;
      tables = lib.filterAttrs (_: builtins.isAttrs) set;
    in
    lib.concatMapStrings (k: "${tomlKey k} = ${tomlValue scalars.${k}}\n")
      (builtins.attrNames scalars)
    + lib.concatMapStrings (k: "\n[${prefix}${tomlKey k}]\n" + tomlTable "${prefix}${tomlKey k}." tables.${k})
      (builtins.attrNames tables);
  tool = name: programs: drv name // { inherit programs; };
  pythonNames = [ "setuptools" "wheel" "pydantic" "typer" "rich" "httpx" "redis" "asyncssh" "apprise" "chromadb" "tokenizers" "cryptography" ];
in
rec {
  systemd = tool "systemd-252" [ "systemctl" "journalctl" "coredumpctl" "systemd-delta"
    "systemd-analyze" "hostnamectl" "timedatectl" "loginctl" "resolvectl" "networkctl"
    "reboot" ];
  procps = tool "procps" [ "ps" "free" "uptime" "vmstat" "w" "pgrep" "top" "sysctl" ];
  coreutils = tool "coreutils" [ "cat" "df" "du" "ls" "readlink" "stat" "uname" "id" "who"
    "date" "nproc" "test" ];
  findutils = tool "findutils" [ "find" ];
  gnugrep = drv "gnugrep";
  util-linux = tool "util-linux" [ "lsblk" "findmnt" "dmesg" "last" "lscpu" "setpriv" "kill" ];
  iproute2 = tool "iproute2" [ "ip" "ss" ];
  lsof = tool "lsof" [ "lsof" ];
  nftables = tool "nftables" [ "nft" ];
  iputils = tool "iputils" [ "ping" ];
  openssh = tool "openssh" [ "ssh" ];
  zfs = tool "zfs" [ "zfs" "zpool" ];
  mdadm = tool "mdadm" [ "mdadm" ];
  getent = drv "getent";
  openssl = drv "openssl";
  git = tool "git" [ "git" ];
  bash = drv "bash";
  nix = tool "nix" [ "nix-collect-garbage" "nix-env" ];
  nixos-rebuild = tool "nixos-rebuild" [ "nixos-rebuild" ];
  # python3.withPackages: an environment whose bin/python3 imports the packages given
  python3 = drv "python3-3.12" // {
    withPackages = f: drv "python3-3.12-env" // { packages = f python3Packages; };
  };
  runtimeShell = "${bash}/bin/sh";
  stdenv.hostPlatform.system = "x86_64-linux";
  formats.toml = { }: {
    type = lib.types.attrsOf lib.types.anything;
    generate = name: value: drv name // { text = tomlTable "" value; };
  };
  writeText = name: text: drv name // { inherit text; };
  runCommand = name: env: script: drv name // { inherit script; };
  callPackage = path: args: import path ({ inherit lib python3Packages callPackage; } // args);
  python3Packages = lib.genAttrs pythonNames drv // {
    buildPythonApplication = args: drv "${args.pname}-${args.version}" // {
      inherit args;
    } // (args.passthru or { });
    python = python3;
    # named by its pname alone, as nixpkgs names a Python package in a dependency list
    buildPythonPackage = args: drv args.pname // { inherit args; };
    fetchPypi = args: drv "${args.pname}-${args.version}.whl";
    # an application's modules, for withPackages; the same store path
    toPythonModule = package: package // { pythonModule = python3; };
  };
}
