{
  description = "ai-sysadmin: a careful autonomous system administrator for Linux hosts, NixOS first";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forEach = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forEach (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      # services.ai-sysadmin; its package defaults to this flake's
      nixosModules.default = { pkgs, lib, ... }: {
        imports = [ ./nix/module.nix ];
        services.ai-sysadmin.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };

      checks = forEach (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        module = import ./nix/check.nix {
          inherit nixpkgs pkgs;
          module = self.nixosModules.default;
        };
      });
    };
}
