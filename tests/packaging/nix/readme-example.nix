# nix-instantiate --eval --strict --json tests/packaging/nix/readme-example.nix --arg example PATH
# The README's NixOS flake, its inputs the stand-in nixpkgs and this repository's flake: the
# config file its system would give the daemon.
{ example }:

let
  lib = import ./lib.nix;
  pkgs = import ./pkgs.nix { inherit lib; };
  nixos = import ./nixos.nix { inherit lib pkgs; };
  nixpkgs = {
    lib = lib // {
      nixosSystem = { modules, ... }:
        import ./eval.nix { inherit lib pkgs; modules = [ nixos ] ++ modules; };
    };
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
  };
  ai-sysadmin = (import ../../../flake.nix).outputs { self = ai-sysadmin; inherit nixpkgs; };
  flake = (import example).outputs { self = flake; inherit nixpkgs ai-sysadmin; };
  inherit (flake.nixosConfigurations.hal) config;
in
{
  configText = config.environment.etc."ai-sysadmin/config.toml".source.text;
  units = builtins.attrNames config.systemd.services;
  ollama = config.services.ollama;
}
