# A stand-in for the few nixpkgs packages and builders the module and the package use. A
# "derivation" is an attribute set with a made-up store path; builders keep their inputs (the
# text of a file, the script of runCommand) so that the test can look at and run them.
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
  pythonNames = [ "setuptools" "wheel" "pydantic" "typer" "rich" "httpx" "redis" "asyncssh" "apprise" "chromadb" "tokenizers" "cryptography" ];
in
rec {
  systemd = drv "systemd-252";
  procps = drv "procps";
  coreutils = drv "coreutils";
  findutils = drv "findutils";
  gnugrep = drv "gnugrep";
  util-linux = drv "util-linux";
  getent = drv "getent";
  openssl = drv "openssl";
  git = drv "git";
  bash = drv "bash";
  nix = drv "nix";
  nixos-rebuild = drv "nixos-rebuild";
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
    };
    # named by its pname alone, as nixpkgs names a Python package in a dependency list
    buildPythonPackage = args: drv args.pname // { inherit args; };
    fetchPypi = args: drv "${args.pname}-${args.version}.whl";
  };
}
