"""``ai-sysadmin setup``: the daemon as a service on a systemd distribution other than NixOS.

It creates the ``ai-sysadmin`` system user in the log-reading groups, the state and config
directories, a config listing every key, the ``{name}-ai`` and ``{name}-llm-worker`` units from
``packaging/systemd/``, the sudoers drop-in for the action catalog (checked by ``visudo``
before it is installed) and the ``{name}-*`` links. Each item compares what it wants with what is
there, so a dry run says exactly what would change and a second run changes nothing. Nothing
here prints; the CLI reports the steps.
"""

from ..safety.sudo_rules import sudoers_text
from .install import (
    Layout,
    ProgramPaths,
    apply,
    build,
    new_config,
    plan,
    program_path,
    running,
)
from .sample_config import sample_config, toml_value
from .steps import Programs, SetupError, Step
from .uninstall import removal_plan, uninstall
from .units import find_templates, render_units

__all__ = [
    "Layout", "ProgramPaths", "Programs", "SetupError", "Step", "apply", "build",
    "find_templates", "new_config",
    "plan", "program_path", "removal_plan", "render_units", "running", "sample_config",
    "sudoers_text",
    "toml_value", "uninstall",
]
