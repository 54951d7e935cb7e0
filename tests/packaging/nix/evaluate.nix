# nix-instantiate --eval --strict --json tests/packaging/nix/evaluate.nix \
#   --argstr configJson '{"services": {"ai-sysadmin": {"enable": true}}}' [--arg enabled false] \
#   [--arg extra ./module.nix]
# nix/module.nix in a small NixOS stand-in; what the module makes of the configuration given
# (and of ``extra``, a module file: what JSON cannot say, such as a Nix path).
{ configJson, enabled ? true, extra ? null }:

let
  lib = import ./lib.nix;
  pkgs = import ./pkgs.nix { inherit lib; };
  inherit (import ./eval.nix {
    inherit lib pkgs;
    modules = [
      (import ./nixos.nix { inherit lib pkgs; })
      ../../../nix/module.nix
      (builtins.fromJSON configJson)
    ] ++ (if extra == null then [ ] else [ extra ]);
  }) config;
  # a value no module defines is null; with the service enabled, an error stays an error
  maybe = value: let tried = builtins.tryEval (builtins.deepSeq value value); in
    if tried.success then tried.value else null;
  need = value: if enabled then value else maybe value;
  configFile = need config.environment.etc."ai-sysadmin/config.toml".source;
  # the programs a unit's PATH holds, from each package's bin/ and sbin/; the system profile
  # (/run/current-system/sw) holds those of environment.systemPackages
  provides = entry:
    if entry == "/run/current-system/sw"
    then builtins.concatMap (p: p.programs or [ ]) config.environment.systemPackages
    else entry.programs or [ ];
in
{
  configFile = if configFile == null then null else configFile.outPath;
  configText = if configFile == null then null else configFile.text;
  services = need config.systemd.services;
  onPath = need (builtins.mapAttrs (_: s: builtins.concatMap provides (s.path or [ ]))
    config.systemd.services);
  sudoRules = need config.security.sudo.extraRules;
  users = need config.users;
  tmpfiles = need config.systemd.tmpfiles.rules;
  ollama = maybe config.services.ollama;
  packages = need (map (p: { inherit (p) name; path = p.outPath; script = p.script or null; })
    config.environment.systemPackages);
  warnings = need config.warnings;
  failedAssertions = need (map (a: a.message)
    (builtins.filter (a: !a.assertion) config.assertions));
}
