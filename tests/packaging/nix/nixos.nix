# The parts of a NixOS configuration that nix/module.nix reads, with NixOS's defaults.
{ lib, pkgs }:
{ config, ... }:
{
  networking.hostName = lib.mkDefault "Hal9000";
  systemd.package = pkgs.systemd;
  nix.package = pkgs.nix;
  system.build.nixos-rebuild = pkgs.nixos-rebuild;
  programs.ssh.package = lib.mkDefault pkgs.openssh;
  # boot.supportedFilesystems is an attribute set of booleans; boot.zfs.enabled is read-only
  boot.supportedFilesystems = lib.mkDefault { };
  boot.zfs.enabled = config.boot.supportedFilesystems.zfs or false;
  boot.zfs.package = pkgs.zfs;
  boot.swraid.enable = lib.mkDefault false;
  # what installer/tools/tools.nix puts in the system profile (system.tools.nixos-version)
  environment.systemPackages = [ (pkgs.writeText "nixos-version" "" // {
    programs = [ "nixos-version" ]; }) ];
}
