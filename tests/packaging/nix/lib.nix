# A small stand-in for nixpkgs' lib: what nix/module.nix and nix/package.nix use, written to
# behave as nixpkgs' functions do for the values they get here. No nixpkgs can be fetched in
# the test environment.
let
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  optionType = name: check: { inherit name check; description = name; };
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  isPlain = v: builtins.isAttrs v && !(v ? outPath) && !(v ? _type);
  filterAttrsRecursive = pred: set: builtins.listToAttrs (builtins.concatMap (name:
    let v = set.${name}; in
    if pred name v
    then [{ inherit name; value = if isPlain v then filterAttrsRecursive pred v else v; }]
    else [ ]) (builtins.attrNames set));
  recursiveUpdate = a: b: a // builtins.mapAttrs
    (name: v: if isPlain v && isPlain (a.${name} or null) then recursiveUpdate a.${name} v else v) b;
in
rec {
  inherit filterAttrsRecursive recursiveUpdate mkOverride;
  mkOption = args: args // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    description = "Whether to enable ${name}.";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalAttrs = cond: set: if cond then set else { };
  concatStringsSep = builtins.concatStringsSep;
  concatMapStrings = f: xs: builtins.concatStringsSep "" (map f xs);
  mapAttrsToList = f: set: map (name: f name set.${name}) (builtins.attrNames set);
  filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap
    (name: if pred name set.${name} then [{ inherit name; value = set.${name}; }] else [ ])
    (builtins.attrNames set));
  toLower = builtins.replaceStrings upper lower;
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  hasInfix = infix: s: builtins.match ".*${escapeRegex infix}.*" s != null;
  escapeRegex = builtins.replaceStrings
    [ "\\" "[" "]" "{" "}" "(" ")" "^" "$" "." "*" "+" "?" "|" ]
    [ "\\\\" "\\[" "\\]" "\\{" "\\}" "\\(" "\\)" "\\^" "\\$" "\\." "\\*" "\\+" "\\?" "\\|" ];
  attrByPath = path: default: set:
    if path == [ ] then set
    else if builtins.isAttrs set && set ? ${builtins.head path}
    then attrByPath (builtins.tail path) default set.${builtins.head path}
    else default;
  unique = builtins.foldl' (kept: x: if builtins.elem x kept then kept else kept ++ [ x ]) [ ];
  toInt = s: builtins.fromJSON s;
  removeSuffix = suffix: s:
    let n = builtins.stringLength s; m = builtins.stringLength suffix; in
    if m <= n && builtins.substring (n - m) m s == suffix then builtins.substring 0 (n - m) s
    else s;
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
  cleanSourceWith = { src, filter ? (_: _: true), ... }: src;
  licenses.mit = { spdxId = "MIT"; };
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  types = {
    str = optionType "str" builtins.isString;
    bool = optionType "bool" builtins.isBool;
    int = optionType "int" builtins.isInt;
    ints.positive = optionType "positive int" (v: builtins.isInt v && v > 0);
    package = optionType "package" (v: builtins.isAttrs v && v ? outPath);
    anything = optionType "anything" (_: true);
    strMatching = re: optionType "string matching ${re}"
      (v: builtins.isString v && builtins.match re v != null);
    enum = values: optionType "one of ${builtins.toJSON values}" (v: builtins.elem v values);
    nullOr = t: optionType "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: optionType "list of ${t.name}" (v: builtins.isList v && builtins.all t.check v);
    attrsOf = t: optionType "attribute set of ${t.name}"
      (v: builtins.isAttrs v && builtins.all t.check (builtins.attrValues v));
    either = a: b: optionType "${a.name} or ${b.name}" (v: a.check v || b.check v);
  };
}
