# The parts of a NixOS configuration that nix/module.nix reads.
{ lib, pkgs }:
{
  networking.hostName = lib.mkDefault "Hal9000";
  systemd.package = pkgs.systemd;
  nix.package = pkgs.nix;
  system.build.nixos-rebuild = pkgs.nixos-rebuild;
}
