# services.ai-sysadmin: the daemon ({aiName}-ai), its LLM queue worker ({aiName}-llm-worker),
# the config file both read, the sudo rules for the action catalog's fixes, the {aiName}-*
# commands and, unless the config names an LLM elsewhere (or not Ollama), a local Ollama.
#
# The units come from packaging/systemd/*.service.in, the same templates `ai-sysadmin setup`
# fills on other distributions, so both installs share one set of hardening options.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkDefault mkIf mkMerge mkOption types;

  cfg = config.services.ai-sysadmin;
  settingsFormat = pkgs.formats.toml { };
  # the state directory and a knowledge path outside it, as the config file says: the units,
  # tmpfiles and the user's home follow what the daemon writes
  stateDir = cfg.settings.state_dir or "/var/lib/ai-sysadmin";
  knowledgePath = cfg.settings.knowledge.path or null;
  # the directory of a queue file queue.url puts outside the state directory (the worker's
  # as much as the daemon's); a Redis queue, or the default state_dir/queue.db, has none
  queueFile = builtins.match "[Ss][Qq][Ll][Ii][Tt][Ee]://(/.*)/[^/]+"
    (cfg.settings.queue.url or "sqlite://");
  queueDir =
    let dir = if queueFile == null then null else builtins.head queueFile; in
    if dir == null || dir == stateDir || lib.hasPrefix "${stateDir}/" dir then null else dir;

  words = s: builtins.filter (w: builtins.isString w && w != "") (builtins.split " +" s);

  # Ollama runs here when the daemon's LLM is Ollama at a loopback address, as the config
  # file says it (settings win over ollamaHost: a URL or backend given there counts). The
  # daemon takes a bare host:port too (Ollama's OLLAMA_HOST convention), and a scheme and
  # host in any case: so does this match, on the URL lower-cased
  llm = settings.llm or { };
  llmUrlOption = if (cfg.settings.llm or { }) ? url
    then "services.ai-sysadmin.settings.llm.url" else "services.ai-sysadmin.ollamaHost";
  loopback = builtins.match "(https?://)?(127\\.0\\.0\\.1|localhost|\\[::1])(:([0-9]+))?/?"
    (lib.toLower (llm.url or cfg.ollamaHost));
  loopbackOllama = (llm.backend or "ollama") == "ollama" && loopback != null;
  loopbackScheme = if loopbackOllama then builtins.elemAt loopback 0 else null;
  loopbackPort = if loopbackOllama then builtins.elemAt loopback 3 else null;
  # where the daemon would connect is not where an Ollama started here listens: as Ollama's
  # own client reads OLLAMA_HOST, a URL with a scheme and no port means the scheme's port
  # (80, 443), and the daemon refuses a bare host without one; services.ollama serves http only
  ollamaUrlProblem =
    if !loopbackOllama then null
    else if loopbackScheme == "https://" then
      "${llmUrlOption} is an https:// loopback URL, but the Ollama this module runs here "
      + "serves plain http: write http://127.0.0.1:11434 (or the port it should listen on)."
    else if loopbackPort == null && loopbackScheme != null then
      "${llmUrlOption} names no port: the daemon connects to port 80 there (a scheme's own "
      + "port, as Ollama's client reads OLLAMA_HOST), where no Ollama runs; name the port "
      + "the local Ollama should listen on, e.g. http://127.0.0.1:11434."
    else if loopbackPort == null then
      "${llmUrlOption} is a bare host without a port, which the daemon refuses: write "
      + "host:port (127.0.0.1:11434) or a URL (http://127.0.0.1:11434)."
    else null;
  localOllama = loopbackOllama && ollamaUrlProblem == null;
  ollamaPort = if localOllama then lib.toInt loopbackPort else 11434;
  # services.ollama listens on "${host}:${port}" (OLLAMA_HOST), host 127.0.0.1 unless told:
  # IPv6 loopback must be said, in the brackets OLLAMA_HOST wants; localhost reaches 127.0.0.1
  ollamaListen =
    if localOllama && builtins.elemAt loopback 1 == "[::1]" then "[::1]" else "127.0.0.1";

  # every program the daemon runs, by its store path (config.py's `programs` section);
  # apt-get, dnf, yum, rpm-ostree and pacman keep their names: they exist only on managed hosts
  # that have them
  programs = {
    systemctl = "${config.systemd.package}/bin/systemctl";
    journalctl = "${config.systemd.package}/bin/journalctl";
    ps = "${pkgs.procps}/bin/ps";
    df = "${pkgs.coreutils}/bin/df";
    cat = "${pkgs.coreutils}/bin/cat";
    readlink = "${pkgs.coreutils}/bin/readlink";
    openssl = "${pkgs.openssl}/bin/openssl";
    coredumpctl = "${config.systemd.package}/bin/coredumpctl";
    systemd_delta = "${config.systemd.package}/bin/systemd-delta";
    git = "${pkgs.git}/bin/git";
    setpriv = "${pkgs.util-linux}/bin/setpriv";
    getent = "${pkgs.getent}/bin/getent";
    kill = "${pkgs.util-linux}/bin/kill";
    sh = "${pkgs.bash}/bin/sh";
    nix_collect_garbage = "${config.nix.package}/bin/nix-collect-garbage";
    nix_env = "${config.nix.package}/bin/nix-env";
    find = "${pkgs.findutils}/bin/find";
    stat = "${pkgs.coreutils}/bin/stat";
    nixos_rebuild = "${config.system.build.nixos-rebuild}/bin/nixos-rebuild";
  };

  # the daemon's PATH, for what it runs by bare name, having no programs.* entry: the model's
  # read-only commands (safety/readonly_commands.py), the fixes' programs
  # (safety/remediation_commands.py), check_reachability's ping and the ssh that git runs for
  # a config repo over SSH. NixOS gives a unit only coreutils, findutils, grep, sed and systemd.
  # ping is iputils' own, not the /run/wrappers one: it needs no capability, pinging over an
  # ICMP datagram socket, open to every group by systemd's sysctl.d/50-default.conf
  # (net.ipv4.ping_group_range), which NixOS installs. (The unit's bounding set keeps
  # CAP_NET_RAW for Debian's ping, which carries it as a file capability.)
  servicePath = [
    config.systemd.package
    pkgs.coreutils
    pkgs.procps
    pkgs.util-linux
    pkgs.iproute2
    pkgs.lsof
    pkgs.nftables
    pkgs.iputils
    pkgs.git
    config.programs.ssh.package
    config.nix.package
    config.system.build.nixos-rebuild
  ]
  # zfs and zpool, mdadm: only on a host that has the file system or the RAID
  ++ lib.optional config.boot.zfs.enabled config.boot.zfs.package
  ++ lib.optional config.boot.swraid.enable pkgs.mdadm
  # nixos-version has no package of its own: NixOS puts it in the system profile only
  ++ [ "/run/current-system/sw" ];

  # every file a key ending in _file or _files names (llm.api_key_file, knowledge.token_file,
  # notify.apprise_urls_file, ssh.key_files, a remote system's key_file ...), with where it is
  # set; a derivation (programs.*) is a value, not a table to look into
  secretFiles = at: value:
    if builtins.isList value then
      builtins.concatLists (builtins.genList
        (i: secretFiles "${at}.${toString i}" (builtins.elemAt value i)) (builtins.length value))
    else if builtins.isAttrs value && !(value ? outPath) then
      builtins.concatMap
        (key:
          let v = value.${key}; here = "${at}.${key}"; in
          if builtins.match ".*_file" key != null then [{ inherit here; file = v; }]
          else if builtins.match ".*_files" key != null && builtins.isList v then
            builtins.genList (i: { here = "${here}.${toString i}"; file = builtins.elemAt v i; })
              (builtins.length v)
          else secretFiles here v)
        (builtins.attrNames value)
    else [ ];
  # a secret file must stay where it is: a Nix path, a string made from one ("${./key}") or a
  # store path is (or was) copied to the store, which every user can read
  inStore = file: !(builtins.isString file) || builtins.hasContext file
    || builtins.substring 0 1 file != "/" || lib.hasPrefix "${builtins.storeDir}/" file
    || lib.hasPrefix "/nix/store/" file;
  # gotifyTokenFile's type stops a bare Nix path, not "${./token}" or a /nix/store string;
  # the store file gotifyToken writes is not in this list: that one warns instead
  secretsInStore = builtins.filter (f: f.file != null && inStore f.file)
    (secretFiles "services.ai-sysadmin.settings" cfg.settings
      ++ secretFiles "services.ai-sysadmin.remoteSystems" cfg.remoteSystems
      ++ [{ here = "services.ai-sysadmin.gotifyTokenFile"; file = cfg.gotifyTokenFile; }]);

  gotifyTokenFile =
    if cfg.gotifyToken != null
    then "${pkgs.writeText "ai-sysadmin-gotify-token" cfg.gotifyToken}"
    else cfg.gotifyTokenFile;

  fromOptions = {
    ai_name = cfg.aiName;
    autonomy_level = cfg.autonomyLevel;
    check_interval = cfg.checkInterval;
    state_dir = stateDir;
    gotify_url = cfg.gotifyUrl;
    gotify_token_file = gotifyTokenFile;
    remote_systems = cfg.remoteSystems;
    config_repo = cfg.configRepo;
    config_branch = cfg.configBranch;
    llm = { url = cfg.ollamaHost; model = cfg.model; };
    # the worker unit serves the queue
    queue.embedded_worker = false;
    # a service's PATH holds no setuid wrapper
    safety.sudo = "/run/wrappers/bin/sudo";
    inherit programs;
  };
  # TOML has no null: an unset option is an absent key, i.e. the daemon's default
  settings = lib.recursiveUpdate (lib.filterAttrsRecursive (_: v: v != null) fromOptions)
    cfg.settings;
  configFile = settingsFormat.generate "ai-sysadmin.toml" settings;
  # the name and model as the daemon reads them (a key in settings wins over aiName and
  # model): the units, the commands and Ollama's preload must say what the daemon says
  aiName = settings.ai_name;
  model = settings.llm.model;
  cleanPaths = settings.safety.clean_paths or [ "/var/cache" "/var/tmp" "/tmp" ];

  # sudoers words as policy sudoers writes them: fnmatch's escapes, then sudoers' own
  sudoersWord = s:
    builtins.replaceStrings [ "\\" "," ":" "=" "#" ] [ "\\\\" "\\," "\\:" "\\=" "\\#" ]
      (builtins.replaceStrings [ "\\" "*" "?" "[" "]" ] [ "\\\\" "\\*" "\\?" "\\[" "\\]" ] s);
  # clean_directory's constant script (safety/clean_script.py; a test keeps the copy current)
  cleanScript = lib.removeSuffix "\n" (builtins.readFile ./clean-script.txt);
  cleanRule = lib.concatStringsSep " "
    (map sudoersWord ([ programs.sh "-c" cleanScript "ai-sysadmin-clean" ] ++ cleanPaths))
    + " -- *";
  # the action catalog's fixes, as `ai-sysadmin policy sudoers` prints them
  # (regular expressions, whole: sudo's glob `*` takes spaces and dashes too; see
  # safety/sudo_rules.py, which a test keeps this copy equal to)
  sudoCommands = [
    "${programs.systemctl} ${''^(restart|start|reset-failed) -- [A-Za-z0-9_\\][A-Za-z0-9_@\:.\\-]*\.(service|socket|timer|path|mount|automount|swap|slice|scope)$''}"
    "${programs.journalctl} ${''^--vacuum-size\=[1-9][0-9]*[KMG]$''}"
    "${programs.kill} ${''^-TERM [1-9][0-9]*$''}"
  ] ++ lib.optional (cleanPaths != [ ]) cleanRule;

  # a path in Environment= or ReadWritePaths=, the only lines it goes in: both expand
  # specifiers, and neither a `$` (nor undoes a `$$`, as Exec*= lines do)
  unitWord = s: builtins.replaceStrings [ "%" ] [ "%%" ] s;
  program = "${cfg.package}/bin/ai-sysadmin";
  placeholders = {
    name = aiName;
    inherit program;
    config = "${configFile}";
    user = cfg.user;
    group = cfg.group;
    state_dir = unitWord stateDir;
    setpriv = programs.setpriv;
    read_write_paths = lib.concatStringsSep " "
      (map (p: "-" + unitWord p) (lib.unique ([ "/var/log/journal" ] ++ cleanPaths
        ++ lib.optional (knowledgePath != null) knowledgePath
        ++ lib.optional (queueDir != null) queueDir)));
    worker_read_write_paths = lib.concatStringsSep " "
      ([ (unitWord stateDir) ] ++ lib.optional (queueDir != null) ("-" + unitWord queueDir));
  };

  # a unit template as { Unit = {..}; Service = {..}; Install = {..}; }; a key given several
  # times (SystemCallFilter=) becomes a list
  readUnit = file:
    let
      text = builtins.replaceStrings (map (k: "@${k}@") (builtins.attrNames placeholders))
        (builtins.attrValues placeholders) (builtins.readFile file);
      lines = builtins.filter (l: builtins.isString l && l != "" && builtins.substring 0 1 l != "#")
        (builtins.split "\n" text);
      step = acc: line:
        let
          section = builtins.match "\\[([A-Za-z]+)]" line;
          pair = builtins.match "([A-Za-z]+)=(.*)" line;
          old = acc.sections.${acc.current} or { };
          key = builtins.elemAt pair 0;
        in
        if section != null then acc // { current = builtins.head section; }
        else if pair == null then throw "ai-sysadmin: cannot read ${toString file}: ${line}"
        else acc // {
          sections = acc.sections // {
            ${acc.current} = old // { ${key} = (old.${key} or [ ]) ++ [ (builtins.elemAt pair 1) ]; };
          };
        };
      parsed = builtins.foldl' step { current = "none"; sections = { }; } lines;
      single = vs: if builtins.length vs == 1 then builtins.head vs else vs;
    in
    builtins.mapAttrs (_: builtins.mapAttrs (_: single)) parsed.sections;

  serviceFrom = file: extraAfter:
    let unit = readUnit file; in {
      description = unit.Unit.Description;
      after = words unit.Unit.After ++ extraAfter;
      wants = words unit.Unit.Wants ++ extraAfter;
      wantedBy = words unit.Install.WantedBy;
      unitConfig = removeAttrs unit.Unit [ "Description" "After" "Wants" ];
      serviceConfig = unit.Service;
    };

  # {aiName}-check, ...: what `ai-sysadmin commands install` writes everywhere, a Python
  # script that hands its own name and this config to the CLI's argv[0] dispatch. The Python
  # wrapper of a Nix application sets argv[0] to its own name, so the scripts run under a
  # Python that imports the package instead (toPythonModule: an application's modules), the
  # one it was built for (this flake's nixpkgs may not be the system's: another Python 3)
  commandsPython = (cfg.package.pythonInterpreter or pkgs.python3).withPackages
    (ps: [ (ps.toPythonModule cfg.package) ]);
  commands = pkgs.runCommand "${aiName}-commands" { } ''
    mkdir -p $out/bin
    ${program} --config ${configFile} commands install --bin-dir $out/bin \
      --python ${commandsPython}/bin/python3 > /dev/null
  '';

  # a credential inside a URL setting lands in the world-readable Nix store with the config:
  # a password or user name before the host (a token often stands alone there; an ssh://
  # user is a login, no secret) or a query's value (a proxy's key). Each key of the config
  # that holds a URL (config.py's _URL_KEYS), with the option that sets it and where a
  # secret file can hold the credential instead
  urlSettings = [
    { key = [ "llm" "url" ]; option = llmUrlOption;
      instead = "llm.api_key_file (the key as a bearer token, for a server that takes one)"; }
    { key = [ "queue" "url" ]; option = "services.ai-sysadmin.settings.queue.url";
      instead = null; }
    { key = [ "gotify_url" ]; option = optionOf "gotify_url" "gotifyUrl";
      instead = "gotifyTokenFile"; }
    { key = [ "knowledge" "url" ]; option = "services.ai-sysadmin.settings.knowledge.url";
      instead = "knowledge.token_file"; }
    { key = [ "knowledge" "ollama_url" ];
      option = "services.ai-sysadmin.settings.knowledge.ollama_url"; instead = null; }
    { key = [ "config_repo" ]; option = optionOf "config_repo" "configRepo";
      instead = "an ssh:// or git@ URL with the key in ssh.key_files"; }
  ];
  optionOf = key: name: if cfg.settings ? ${key} then "services.ai-sysadmin.settings.${key}"
    else "services.ai-sysadmin.${name}";
  hasCredential = url:
    let
      scheme = builtins.match "([A-Za-z][A-Za-z0-9+.-]*)://.*" url;
      user = builtins.match "[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@.*" url;
      query = builtins.match "[^?#]*[?]([^#]*).*" url;
      web = builtins.elem (lib.toLower (builtins.head scheme)) [ "http" "https" ];
    in
    builtins.isString url && scheme != null && (
      (user != null && (lib.hasInfix ":" (builtins.head user) || web))
      || (query != null && builtins.head query != ""));
  urlsWithCredentials = builtins.filter
    (u: hasCredential (lib.attrByPath u.key null settings)) urlSettings;

in
{
  options.services.ai-sysadmin = {
    enable = lib.mkEnableOption "the ai-sysadmin daemon, its LLM queue worker and commands";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The ai-sysadmin package.";
    };

    aiName = mkOption {
      type = types.strMatching "[a-z0-9][a-z0-9_-]{0,31}";
      default =
        let host = lib.toLower config.networking.hostName;
        in if host == "" then "sysadmin" else builtins.substring 0 32 host;
      defaultText = lib.literalExpression "lib.toLower config.networking.hostName";
      example = "hal";
      description = ''
        The assistant's name: the units are {aiName}-ai and {aiName}-llm-worker, the
        commands {aiName}-check, {aiName}-issues, {aiName}-approve, ...
      '';
    };

    autonomyLevel = mkOption {
      type = types.enum [ "observe" "suggest" "auto-safe" "auto-full" ];
      default = "suggest";
      description = ''
        observe: record proposals; suggest: every fix waits for a person; auto-safe: low-risk
        fixes run; auto-full: low and medium ones. High-risk fixes always wait.
      '';
    };

    checkInterval = mkOption {
      type = types.ints.positive;
      default = 300;
      description = "Seconds between two full checks (a failing unit is seen at once).";
    };

    ollamaHost = mkOption {
      type = types.str;
      default = "http://127.0.0.1:11434";
      example = "http://gpu-box:11434";
      description = ''
        URL of the Ollama server (llm.url), or a bare host:port as OLLAMA_HOST takes it. A
        loopback address (127.0.0.1, localhost, [::1]) runs Ollama on this machine
        (services.ollama, listening there); any other is used as it is.
      '';
    };

    model = mkOption {
      type = types.str;
      default = "qwen2.5:7b-instruct";
      description = "The model the daemon asks (llm.model).";
    };

    ollamaAcceleration = mkOption {
      type = types.nullOr (types.enum [ false "rocm" "cuda" "vulkan" ]);
      default = null;
      description = ''
        services.ollama.acceleration of the local Ollama: null (nixpkgs' choice), false (CPU
        only), "rocm", "cuda" or "vulkan".
      '';
    };

    preloadModels = mkOption {
      type = types.listOf types.str;
      default = [ model ];
      defaultText = lib.literalExpression
        "[ (config.services.ai-sysadmin.settings.llm.model or config.services.ai-sysadmin.model) ]";
      description = "Models the local Ollama pulls when it starts (services.ollama.loadModels).";
    };

    gotifyUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://gotify.example.com";
      description = "Gotify server for notifications (gotify_url).";
    };

    gotifyTokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      example = "/run/secrets/gotify-token";
      description = ''
        File holding the Gotify app token (gotify_token_file), readable by the daemon's user,
        e.g. from agenix or sops-nix. A string, not a path: a path would be copied to the store.
      '';
    };

    gotifyToken = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        The Gotify app token itself. It is written to the Nix store, which every user can
        read: prefer gotifyTokenFile.
      '';
    };

    remoteSystems = mkOption {
      type = types.listOf (types.either types.str (types.attrsOf types.anything));
      default = [ ];
      example = [ "web1" "admin@db1:2222" { host = "10.0.0.7"; name = "nas"; sudo = true; } ];
      description = ''
        Remote hosts watched over SSH (remote_systems). A key_file is a string
        ("/run/agenix/nas-key"), not a path: a path would be copied to the store.
      '';
    };

    configRepo = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Git repository of the hosts' configurations (config_repo).";
    };

    configBranch = mkOption {
      type = types.str;
      default = "main";
      description = "Branch of configRepo (config_branch).";
    };

    user = mkOption {
      type = types.str;
      default = "ai-sysadmin";
      description = ''
        The account the daemon and the worker run as; it reads the journal through
        systemd-journal and runs fixes through the sudo rules this module writes.
      '';
    };

    group = mkOption {
      type = types.str;
      default = "ai-sysadmin";
      description = "The daemon's primary group.";
    };

    settings = mkOption {
      type = settingsFormat.type;
      default = { };
      example = { thresholds.disk_warn_percent = 80; safety.clean_paths = [ "/var/cache" ]; };
      description = ''
        Any other key of the config file (`ai-sysadmin config show` lists them all), merged
        over the options above: a key set here wins. A file of secrets (api_key_file,
        token_file, apprise_urls_file, ssh.key_files) is a string, not a path: a path would be
        copied to the store.
      '';
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          # what the config file says, wherever it was given (a key in settings wins)
          assertion = (settings.gotify_url or null) == null
            || (settings.gotify_token_file or null) != null;
          message = "${optionOf "gotify_url" "gotifyUrl"} needs gotifyTokenFile (or "
            + "settings.gotify_token_file): the app token.";
        }
        {
          # it names the units and the commands, as aiName does
          assertion = builtins.match "[a-z0-9][a-z0-9_-]{0,31}" (toString aiName) != null;
          message = "services.ai-sysadmin.settings.ai_name must be a name like aiName's "
            + "([a-z0-9][a-z0-9_-]{0,31}).";
        }
        {
          assertion = cfg.gotifyToken == null || cfg.gotifyTokenFile == null;
          message = "services.ai-sysadmin: set gotifyTokenFile or gotifyToken, not both.";
        }
        {
          assertion = secretsInStore == [ ];
          message = lib.concatStringsSep ", " (map (f: f.here) secretsInStore)
            + ": name a secret file by its absolute path as a string (\"/run/secrets/...\", "
            + "from agenix or sops-nix), not a Nix path or a store path: those are copied to the "
            + "Nix store, which every user of this machine can read.";
        }
        {
          assertion = ollamaUrlProblem == null;
          message = toString ollamaUrlProblem;
        }
      ];
      warnings = lib.optional (cfg.gotifyToken != null) ''
        services.ai-sysadmin.gotifyToken is written to the world-readable Nix store; any user
        of this machine can read it. Use gotifyTokenFile.''
      # a warning, not an assertion: a Redis password and a forge's https token have no
      # file-based place in the config, and on a machine with no other users the store is
      # no leak
      ++ map (u: "${u.option} holds a credential (a password, user name or query in the "
        + "URL), written to the world-readable Nix store with the config file; any user of "
        + "this machine can read it."
        + (if u.instead == null then " The config has no file-based place for it."
           else " Put it in ${u.instead} instead."))
        urlsWithCredentials;

      users.users.${cfg.user}.extraGroups = [ "systemd-journal" ];
      systemd.tmpfiles.rules = [ "d ${stateDir} 0750 ${cfg.user} ${cfg.group} - -" ]
        ++ lib.optional (knowledgePath != null)
          "d ${knowledgePath} 0750 ${cfg.user} ${cfg.group} - -"
        ++ lib.optional (queueDir != null && queueDir != knowledgePath)
          "d ${queueDir} 0750 ${cfg.user} ${cfg.group} - -";

      environment.etc."ai-sysadmin/config.toml".source = configFile;
      environment.systemPackages = [ cfg.package commands ];

      security.sudo.extraRules = [{
        users = [ cfg.user ];
        runAs = "root";
        commands = map (command: { inherit command; options = [ "NOPASSWD" ]; }) sudoCommands;
      }];

      systemd.services."${aiName}-ai" = serviceFrom ../packaging/systemd/ai.service.in
        (lib.optional localOllama "ollama.service") // { path = servicePath; };
      systemd.services."${aiName}-llm-worker" =
        serviceFrom ../packaging/systemd/llm-worker.service.in
          (lib.optional localOllama "ollama.service");
    }
    (mkIf (cfg.user == "ai-sysadmin") {
      users.users.ai-sysadmin = {
        isSystemUser = true;
        inherit (cfg) group;
        home = stateDir;
      };
    })
    (mkIf (cfg.group == "ai-sysadmin") { users.groups.ai-sysadmin = { }; })
    (mkIf localOllama {
      services.ollama = {
        enable = mkDefault true;
        host = mkDefault ollamaListen;
        port = mkDefault ollamaPort;
        acceleration = mkDefault cfg.ollamaAcceleration;
        loadModels = mkDefault cfg.preloadModels;
      };
    })
  ]);
}
