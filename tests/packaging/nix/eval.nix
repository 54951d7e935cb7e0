# A small stand-in for nixpkgs' evalModules: enough to evaluate nix/module.nix as NixOS would.
# Options are declared only under the module's own options; any other path (systemd.services,
# users, security.sudo, ...) merges its definitions as NixOS merges them: mkIf, mkMerge and
# priorities (mkDefault) first, then lists concatenated, attribute sets merged per name, any
# other value unique. A path left with no definition throws when it is read.
{ lib, pkgs, modules }:

let
  isOption = x: builtins.isAttrs x && (x._type or null) == "option";
  isPlain = x: builtins.isAttrs x && !(x ? _type) && !(x ? outPath);
  show = path: builtins.concatStringsSep "." path;

  # mkIf/mkOverride around an attribute set become mkIf/mkOverride around each attribute,
  # without evaluating the condition: that is what lets a module read its own options
  pushDown = def:
    let kind = def._type or null; in
    if kind == "merge" then builtins.concatMap pushDown def.contents
    else if kind == "if" || kind == "override" then
      let inner = pushDown def.content; in
      if builtins.all isPlain inner
      then map (builtins.mapAttrs (_: v: def // { content = v; })) inner
      else [ def ]
    else [ def ];

  discharge = priority: def:
    let kind = def._type or null; in
    if kind == "if" then (if def.condition then discharge priority def.content else [ ])
    else if kind == "merge" then builtins.concatMap (discharge priority) def.contents
    else if kind == "override" then discharge def.priority def.content
    else [{ inherit priority; value = def; }];

  # the definitions of the highest priority (the lowest number)
  winners = defs:
    let
      all = builtins.concatMap (discharge 100) defs;
      best = builtins.foldl' (m: d: if d.priority < m then d.priority else m) 100000 all;
    in
    map (d: d.value) (builtins.filter (d: d.priority == best) all);

  combine = path: values:
    if values == [ ] then throw "${show path} has no value"
    else if builtins.length values == 1 && !(isPlain (builtins.head values))
    then builtins.head values
    else if builtins.all builtins.isList values then builtins.concatLists values
    else if builtins.all isPlain values then mergeAt path { } values
    else throw "${show path} is defined more than once";

  resolveOption = path: option: defs:
    let
      values = winners defs;
      value =
        if values == [ ] then
          (if option ? default then option.default else throw "${show path} is not set")
        else combine path values;
    in
    if option.type.check value then value
    else throw "${show path}: the value is not a ${option.type.description}";

  mergeAt = path: declared: defs:
    let
      pushed = builtins.concatMap pushDown defs;
      names = builtins.attrNames declared ++ builtins.concatMap builtins.attrNames pushed;
      optionsHere = builtins.any isOption (builtins.attrValues declared);
      undeclared = builtins.filter (n: !(declared ? ${n}))
        (builtins.concatMap builtins.attrNames pushed);
      child = name: mergeAt (path ++ [ name ]) (declared.${name} or { })
        (builtins.concatMap (d: if d ? ${name} then [ d.${name} ] else [ ]) pushed);
    in
    if isOption declared then resolveOption path declared defs
    else if optionsHere && undeclared != [ ]
    then throw "no option ${show (path ++ [ (builtins.head undeclared) ])}"
    else if declared != { } || (pushed != [ ] && builtins.all isPlain pushed)
    then builtins.listToAttrs (map (name: { inherit name; value = child name; }) names)
    else combine path (winners defs);

  mergeDeclarations = a: b: a // builtins.mapAttrs
    (name: v: if a ? ${name} && !(isOption v) then mergeDeclarations a.${name} v else v) b;

  # a module: a file, a function of { config, lib, pkgs }, or an attribute set; with its imports
  collect = m:
    if builtins.isPath m then collect (import m)
    else
      let result = if builtins.isFunction m then m { inherit config lib pkgs; } else m; in
      [ (removeAttrs result [ "imports" ]) ] ++ builtins.concatMap collect (result.imports or [ ]);
  evaluated = builtins.concatMap collect modules;
  declarations = builtins.foldl' mergeDeclarations { } (map (m: m.options or { }) evaluated);
  definitions = map (m: if m ? config then m.config else removeAttrs m [ "options" ]) evaluated;
  config = mergeAt [ ] declarations definitions;
in
{ inherit config; }
