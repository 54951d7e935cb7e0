"""A real git repository in a temporary directory, committed to with set dates and authors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitRepo:
    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")

    def git(self, *args: str, when: float | None = None, author: str = "Alice Admin",
            email: str = "alice@example.org") -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email,
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
        if when is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{int(when)} +0000"
        done = subprocess.run(["git", "-C", str(self.path), *args], env=env,
                              capture_output=True, text=True, check=True)
        return done.stdout

    def commit(self, files: dict[str, str | None], message: str, when: float,
               author: str = "Alice Admin", email: str = "alice@example.org") -> str:
        """Write (or, for None, delete) ``files`` and commit them at ``when``."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                self.git("rm", "--quiet", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", "--", name)
        self.git("commit", "--quiet", "-m", message, when=when, author=author, email=email)
        return self.git("rev-parse", "HEAD").strip()
