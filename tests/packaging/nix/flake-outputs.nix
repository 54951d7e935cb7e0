# nix-instantiate --eval --strict --json tests/packaging/nix/flake-outputs.nix
# flake.nix's outputs over the stand-in nixpkgs: the package it builds and its NixOS module.
let
  lib = import ./lib.nix;
  pkgs = import ./pkgs.nix { inherit lib; };
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
  };
  flake = (import ../../../flake.nix).outputs { self = flake; inherit nixpkgs; };
  package = flake.packages.x86_64-linux.default;
  inherit (import ./eval.nix {
    inherit lib pkgs;
    modules = [
      (import ./nixos.nix { inherit lib pkgs; })
      flake.nixosModules.default
      { services.ai-sysadmin.enable = true; }
    ];
  }) config;
  names = map (p: p.name);
in
{
  systems = builtins.attrNames flake.packages;
  checks = builtins.attrNames flake.checks.x86_64-linux;
  package = {
    inherit (package.args) pname version pyproject;
    dependencies = names package.args.dependencies;
    build-system = names package.args.build-system;
    inherit (package.args.meta) mainProgram description;
  };
  modulePackage = config.services.ai-sysadmin.package.outPath;
  packageOutPath = package.outPath;
}
