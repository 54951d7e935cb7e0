# `nix flake check`: a NixOS system with the module, its config file read by the program itself
# and by a {aiName}-* command (nixpkgs' Python environment of the package), and the daemon
# unit's exposure as systemd-analyze rates it (threshold 4.5).
{ nixpkgs, pkgs, module }:

let
  system = nixpkgs.lib.nixosSystem {
    inherit (pkgs.stdenv.hostPlatform) system;
    modules = [
      module
      {
        boot.isContainer = true;
        networking.hostName = "hal";
        system.stateVersion = "24.11";
        services.ai-sysadmin = {
          enable = true;
          ollamaHost = "http://10.0.0.5:11434";
          remoteSystems = [ "web1" { host = "10.0.0.7"; name = "nas"; sudo = true; } ];
          settings.agent.investigate = false;
        };
      }
    ];
  };
  inherit (system.config.services.ai-sysadmin) package;
  etc = system.config.environment.etc;
  units = system.config.systemd.units;
  commands = builtins.head (builtins.filter (p: (p.name or "") == "hal-commands")
    system.config.environment.systemPackages);
in
pkgs.runCommand "ai-sysadmin-module-check" { nativeBuildInputs = [ pkgs.systemd ]; } ''
  ${package}/bin/ai-sysadmin --config ${etc."ai-sysadmin/config.toml".source} config show \
    --json > config.json
  grep -q '"value": "hal"' config.json
  ${commands}/bin/hal-config show --json > commands.json
  grep -q '"value": "hal"' commands.json
  systemd-analyze security --offline=yes --threshold=45 \
    ${units."hal-ai.service".unit}/hal-ai.service
  systemd-analyze security --offline=yes --threshold=45 \
    ${units."hal-llm-worker.service".unit}/hal-llm-worker.service
  touch $out
''
