"""Real git repositories built by tests: commits, branches, merge commits and squash merges."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 1_700_000_000
"""2023-11-14T22:13:20Z; every commit is one minute after the previous one."""


@dataclass
class GitRepo:
    """A non-bare repository with a `main` branch, driven through the git command line."""

    path: Path
    owner: str = "octo-org"
    name: str = "widgets"
    clock: int = field(default=EPOCH)

    @classmethod
    def init(cls, path: Path, owner: str = "octo-org", name: str = "widgets") -> GitRepo:
        path.mkdir(parents=True, exist_ok=True)
        repo = cls(path, owner, name)
        repo.git("init", "-q", "-b", "main")
        repo.git("config", "user.name", "Test Author")
        repo.git("config", "user.email", "author@example.com")
        repo.git("config", "commit.gpgsign", "false")
        return repo

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def git(self, *args: str, author: str = "Test Author") -> str:
        self.clock += 60
        date = f"@{self.clock} +0000"
        email = f"{author.split()[0].lower()}@example.com"
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
               "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com",
               "GIT_CONFIG_NOSYSTEM": "1"}
        result = subprocess.run(["git", "-C", str(self.path), *args], env=env, check=True,
                                capture_output=True, text=True)
        return result.stdout.strip()

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
            self.git("add", "--", name)

    def commit(self, message: str, files: dict[str, str | bytes | None] | None = None,
               author: str = "Test Author") -> str:
        if files:
            self.write(files)
        self.git("commit", "-q", "--allow-empty", "-m", message, author=author)
        return self.head()

    def rename(self, old: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)

    def branch(self, name: str, start: str = "main") -> None:
        self.git("checkout", "-q", "-b", name, start)

    def checkout(self, ref: str) -> None:
        self.git("checkout", "-q", ref)

    def merge_pr(self, branch: str, number: int, title: str) -> str:
        """Merge `branch` into main the way GitHub's merge button does; returns the merge sha."""
        self.checkout("main")
        message = f"Merge pull request #{number} from {self.owner}/{branch}\n\n{title}"
        self.git("merge", "-q", "--no-ff", "-m", message, branch)
        return self.head()

    def squash_pr(self, branch: str, number: int, title: str, body: str = "") -> str:
        """Squash-merge `branch` into main as "Title (#N)"; returns the squash commit's sha."""
        self.checkout("main")
        self.git("merge", "-q", "--squash", branch)
        message = f"{title} (#{number})" + (f"\n\n{body}" if body else "")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def pull_request(self, number: int, title: str, files: dict[str, str | bytes | None],
                     squash: bool = False, messages: tuple[str, ...] = (),
                     author: str = "Test Author") -> str:
        """A whole PR in one call: branch, one commit per message (files in the last), merge."""
        branch = f"pr-{number}"
        self.branch(branch)
        for message in messages:
            self.commit(message, author=author)
        self.commit(title, files, author=author)
        return self.squash_pr(branch, number, title) if squash else self.merge_pr(
            branch, number, title)
