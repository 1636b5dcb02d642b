"""The filesystem side: the manifest file and the migrations folder → values.

Reads `hmig.yml` and every migration file once, computing each file's name (exactly what
`pgmigrations.name` stores), kind, checksum and statements. It refuses what no migration can
be: a name with control characters, names that differ only in case, a symbolic link out of the
folder, a file that is empty or binary. It decides nothing about order or what is pending: that
is `planning`'s job.
"""

from __future__ import annotations

import errno
import hashlib
import unicodedata
from collections import defaultdict
from pathlib import Path

from hmig import manifest as manifest_module
from hmig import statements
from hmig.errors import ManifestError, MigrationFileError
from hmig.model import Kind, Manifest, MigrationFile, MigrationsConfig, Problem, Statement

# node-pg-migrate 9 loads all of these through jiti (src/migrationLoader.ts).
JS_EXTENSIONS = (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts")
MAX_NAME_LENGTH = 255  # pgmigrations.name is varchar(255)


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest at `path`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(
            "manifest not found",
            file=str(path),
            hint="Run hmig from the folder that holds hmig.yml, or pass --manifest PATH.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", file=str(path)) from exc
    manifest = manifest_module.parse(text, path=path.resolve())
    repository = repository_root(manifest.base_dir)
    try:
        # strict=False: a missing folder is reported below, after the containment check.
        resolved = manifest.migrations.dir.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (3.11)
        raise ManifestError(
            f"cannot resolve {manifest.migrations.dir}: {exc}",
            file=manifest.path.name,
            key="migrations.dir",
        ) from exc
    manifest_module.check_contained(
        manifest,
        text=text,
        root=repository or manifest.base_dir,
        resolved_dir=resolved,
        repository=repository is not None,
    )
    if not resolved.is_dir():
        shown = _display(manifest.migrations.dir, manifest.base_dir)
        raise manifest_module.key_error(
            manifest,
            text=text,
            key=("migrations", "dir"),
            message=f"migrations folder {shown} "
            + ("is a file, not a folder" if resolved.exists() else "does not exist"),
            hint="migrations.dir is relative to the manifest's folder.",
        )
    return manifest


def repository_root(start: Path) -> Path | None:
    """The git work tree holding `start`: the nearest folder with a `.git` entry, or None.

    `.git` is a folder in a clone and a file in a worktree or submodule. Found by walking up,
    not by running git: the Action's image has no git (and a checkout may have none either).
    """
    for folder in (start, *start.parents):
        marker = folder / ".git"
        try:
            if marker.is_symlink() or marker.exists():
                return folder
        except OSError:  # an unreadable parent: keep looking further up
            continue
    return None


def checksum(text: str) -> str:
    """sha256 of the text with line endings and trailing blank space normalised.

    CRLF checkouts and an editor's final newline must not look like an edited migration
    (Flyway #253 is the cautionary tale).
    """
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    return "sha256:" + hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def discover(config: MigrationsConfig, *, base_dir: Path) -> tuple[MigrationFile, ...]:
    """Every migration in `config.dir` (`load_manifest` checked it exists), in no particular order.

    Not recursive; dotfiles, sub-folders and files that are not `.sql` or JavaScript/TypeScript
    (`.js .cjs .mjs .ts .cts .mts`; a README.md, say) are ignored, unlike node-pg-migrate, which
    tries to run them. A symbolic link is followed only when it stays in the folder.
    """
    base = base_dir.resolve()
    candidates = _files(config.dir, base_dir=base)
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in candidates:
        groups[_migration_name(path)].append(path)
    _refuse_names_differing_in_case(groups, base_dir=base)
    return tuple(_load(name, paths, base_dir=base) for name, paths in sorted(groups.items()))


def names(config: MigrationsConfig) -> list[str]:
    """Migration names in `config.dir`, from file names alone (for `hmig new`)."""
    if not config.dir.is_dir():
        return []
    return sorted(
        {
            _migration_name(p)
            for p in config.dir.iterdir()
            if not p.name.startswith(".") and p.is_file() and _kind(p) is not None
        }
    )


# --- internals --------------------------------------------------------------------------------

EMPTY = (
    "the file is empty: it would be recorded as applied, and SQL written into it later would "
    "never run; write the migration, or a comment saying why it does nothing"
)


def _files(folder: Path, *, base_dir: Path) -> list[Path]:
    """The migration files of `folder`, sorted; refuse bad names and links that escape it."""
    entries = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and _kind(p) is not None and (p.is_symlink() or p.is_file())
    )
    inside = folder.resolve()
    found: list[Path] = []
    for path in entries:
        shown = _display(path, base_dir)
        if statements.visible(path.name) != path.name:
            raise MigrationFileError(
                "the file name contains a control character (a newline, an escape …): it "
                "would break every log line it is printed in",
                file=statements.visible(shown),
                hint="Rename the file: letters, digits, '_', '-', '.' and spaces are safe.",
            )
        if path.is_symlink():
            target = _link_target(path, shown=shown)
            if not target.is_relative_to(inside):
                raise MigrationFileError(
                    "is a symbolic link to a file outside the migrations folder; hmig does not "
                    "follow links out of it (nor read what they point to)",
                    file=shown,
                    hint="Copy the migration into the folder, or link to a file inside it.",
                )
            if not target.is_file():
                continue  # a link to a sub-folder is a sub-folder: ignored
        found.append(path)
    return found


def _link_target(path: Path, *, shown: str) -> Path:
    """Where a symbolic link ends up, without reading the file there."""
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        raise MigrationFileError(
            "is a broken symbolic link: what it points to does not exist",
            file=shown,
            hint="Fix or remove the link: a migration must not silently vanish from the plan.",
        ) from None
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError on a loop
        if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
            why = "it is a loop"
        else:
            why = statements.visible(exc.strerror or str(exc))
        raise MigrationFileError(
            f"is a symbolic link that cannot be followed: {why}",
            file=shown,
            hint="Fix or remove the link.",
        ) from None


def _refuse_names_differing_in_case(groups: dict[str, list[Path]], *, base_dir: Path) -> None:
    """`002_a` beside `002_A`: one file on macOS and Windows checkouts, two on Linux.

    The databases migrated from either kind of checkout would differ; Unicode normalisation
    (macOS writes `é` decomposed) is folded the same way.
    """
    seen: dict[str, str] = {}
    for name in sorted(groups):
        key = unicodedata.normalize("NFC", name).casefold()
        if key not in seen:
            seen[key] = name
            continue
        first, second = (_display(groups[n][0], base_dir) for n in (seen[key], name))
        how = (
            "letter case"
            if seen[key].casefold() == name.casefold()
            else "Unicode normalisation (an accent written as one character or two)"
        )
        raise MigrationFileError(
            f"the migrations {seen[key]!r} and {name!r} differ only in {how}: {first} "
            f"and {second} are one file on case-insensitive filesystems (macOS, Windows)",
            file=first,
            hint="Rename one of them.",
        )


def _kind(path: Path) -> Kind | None:
    suffix = path.suffix.lower()  # node-pg-migrate 9 matches extensions case-insensitively
    if suffix == ".sql":
        return Kind.SQL
    if suffix in JS_EXTENSIONS:
        return Kind.JS
    return None


def _migration_name(path: Path) -> str:
    """`X.up.sql` and `X.down.sql` are the migration `X` (node-pg-migrate 9's SQL strategy)."""
    stem = path.stem
    if path.suffix.lower() == ".sql":
        for part in (".up", ".down"):
            if stem.lower().endswith(part):
                return stem[: -len(part)]
    return stem


def _role(path: Path) -> str:
    stem = path.stem.lower()
    if path.suffix.lower() == ".sql" and stem.endswith(".up"):
        return "up"
    if path.suffix.lower() == ".sql" and stem.endswith(".down"):
        return "down"
    return "plain"


def _load(name: str, paths: list[Path], *, base_dir: Path) -> MigrationFile:
    shown = [_display(p, base_dir) for p in paths]
    by_role = {_role(p): p for p in paths}
    roles = [_role(p) for p in paths]
    if roles.count("plain") > 1:
        raise MigrationFileError(
            f"two migrations are named {name!r}: {' and '.join(shown)}",
            file=shown[0],
            hint="pgmigrations.name is the file name without its extension: rename one.",
        )
    for role in ("up", "down"):
        if roles.count(role) > 1:
            raise MigrationFileError(
                f"Duplicate .{role}.sql for {name} ({' and '.join(shown)})",
                file=shown[0],
                hint="Keep one file per direction.",
            )
    if "plain" in roles and len(roles) > 1:
        raise MigrationFileError(
            f"Conflicting SQL migration files for {name}: cannot mix .sql with .up/.down "
            f"({', '.join(shown)})",
            file=shown[0],
            hint="Keep either NAME.sql or the NAME.up.sql / NAME.down.sql pair.",
        )
    if "down" in by_role and "up" not in by_role:
        raise MigrationFileError(
            f"Found .down.sql without matching .up.sql for {name}",
            file=_display(by_role["down"], base_dir),
            hint=f"Add {name}.up.sql, or remove the .down.sql file.",
        )
    main = by_role.get("up") or by_role["plain"]
    if len(name) > MAX_NAME_LENGTH:
        raise MigrationFileError(
            f"the migration name is {len(name)} characters; pgmigrations.name holds at most 255",
            file=_display(main, base_dir),
        )
    down = by_role.get("down")
    return _read(
        name,
        main,
        base_dir=base_dir,
        down_file=down,
        whole_file_is_up=main is by_role.get("up"),
    )


def _read(
    name: str, path: Path, *, base_dir: Path, down_file: Path | None, whole_file_is_up: bool
) -> MigrationFile:
    shown = _display(path, base_dir)
    text = _text(path, shown)
    kind = _kind(path)
    assert kind is not None
    if kind is Kind.JS:
        return MigrationFile(
            name=name, path=shown, abspath=path, kind=kind, checksum=checksum(text)
        )
    section = statements.Section(text, 0) if whole_file_is_up else statements.up_section(text)
    parsed, problem = _parse(text, section)
    if down_file is not None:
        down_text = _text(down_file, _display(down_file, base_dir))
        down_parsed, down_problem = _parse(down_text, statements.Section(down_text, 0))
    else:
        down_section = statements.down_section(text)
        down_parsed, down_problem = _parse(text, down_section) if down_section else ((), None)
    has_down = down_file is not None or statements.down_section(text) is not None
    return MigrationFile(
        name=name,
        path=shown,
        abspath=path,
        kind=kind,
        checksum=checksum(text),
        statements=parsed,
        no_transaction_directive=bool(statements.NO_TRANSACTION_DIRECTIVE.search(section.text)),
        down_path=_display(down_file, base_dir) if down_file else None,
        problem=problem,
        down_statements=down_parsed if has_down else None,
        down_problem=down_problem,
    )


def _text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(
            f"not UTF-8 text (byte {exc.start})", file=shown, hint="Save the file as UTF-8."
        ) from exc
    except OSError as exc:
        raise MigrationFileError(f"cannot read: {exc.strerror}", file=shown) from exc


def _parse(text: str, section: statements.Section) -> tuple[tuple[Statement, ...], Problem | None]:
    """The section's statements, or why the file cannot run (checked on the whole file)."""
    unreadable = _unreadable(text)
    if unreadable is not None:
        return (), unreadable
    try:
        return statements.split(text, section), None
    except statements.SqlProblem as exc:
        return (), exc.problem


def _unreadable(text: str) -> Problem | None:
    """Empty (only blank space) or binary: not a migration, whatever its sections hold.

    A file of comments only is a deliberate no-op and stays valid (node-pg-migrate records
    it too).
    """
    if not text.strip():
        return Problem(EMPTY)
    return statements.binary_problem(text)


def _display(path: Path, base_dir: Path) -> str:
    """The path as users see it: relative to the manifest's folder (already resolved).

    Only the folder is resolved: a symbolic link is shown as itself, never as its target.
    """
    try:
        return path.relative_to(base_dir).as_posix()
    except ValueError:
        try:
            return (path.parent.resolve() / path.name).relative_to(base_dir).as_posix()
        except ValueError:
            return str(path)
