"""The GitHub Action entry point (`hmig-action`): inputs → one command → comment, summary, outputs.

It runs the same commands as the CLI, with the CLI's grammar, and adds what only a workflow
needs: masks before anything is printed, migration text fenced off from workflow commands, the
sticky PR comment, the job summary, annotations and step outputs. Posting to GitHub can only ever
add a warning: it never changes what happened to the database or the exit code. Like the CLI, this
is one of the two places that choose an exit code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import jsonschema

from hmig import __version__, cli, faults, markdown, reporting
from hmig.errors import ConfigurationError, ExitCode, HmigError, Refused
from hmig.github import client as github_client
from hmig.github import comments as github_comments
from hmig.github import event as github_event
from hmig.github import workflow
from hmig.model import Outcome
from hmig.settings import ActionInputs, GitHubContext, Settings

# Commands that post a report made elsewhere: no database, no migration code (the fork pattern).
_COMMENT_COMMAND = "comment"
# Options that have an input of their own: one way to set each thing.
_OWN_INPUTS = {"--env": "environment", "--manifest": "manifest", "--json": None}
# GitHub stores at most 10 annotations of each kind per step (github-actions.md §2.3).
_ANNOTATIONS_PER_KIND = 10
_USER_AGENT = f"hmig-action/{__version__}"


@dataclass(frozen=True, slots=True)
class _Published:
    """What reached GitHub besides the log: paths and the comment's address."""

    report_path: str | None
    comment_url: str | None


def main() -> int:
    """Run the Action; return its exit code (README, "Exit codes")."""
    settings = Settings.from_process()
    faults.arm(settings.fault)  # test-only (tests/README.md, "Fault injection")
    log = workflow.WorkflowLog(sys.stdout)
    # Masks first: nothing may be printed before the runner knows every secret (§2.4).
    for value in (*settings.connection_strings(), *settings.secrets()):
        log.add_mask(value)
    context = settings.github()
    inputs: ActionInputs | None = None
    event: github_event.Event | None = None
    try:
        inputs = settings.action_inputs()
        event = github_event.read_event(
            context.event_name, context.event_path, repository=context.repository, sha=context.sha
        )
        report, code = _run(settings, inputs, context, event, log)
        # A report published by `comment` was made by another run, on another checkout.
        foreign = inputs.command == _COMMENT_COMMAND
    except HmigError as error:
        foreign = False
        report, code = _error_report(error, inputs), ExitCode(error.exit_code)
        with log.stop_commands():
            for text in reporting.error_lines(error):
                print(reporting.redact(text, settings.secrets()), flush=True)
    report = _with_context(report, context, event)
    published = _publish(
        report, settings=settings, inputs=inputs, context=context, log=log, foreign=foreign
    )
    _hand_over(report, context=context, published=published, log=log)
    _write_outputs(report, context=context, published=published)
    return int(code)


def _hand_over(
    report: Mapping[str, Any],
    *,
    context: GitHubContext,
    published: _Published,
    log: workflow.WorkflowLog,
) -> None:
    """Give the report and the backup to the workspace's owner, so later steps can read them.

    The container runs as root (GitHub requires it), but `actions/upload-artifact` runs as the
    runner's user: a 0600 backup owned by root would be unreadable to it. Ownership moves; the
    modes stay private. Only files and folders hmig created inside the workspace change hands.
    """
    workspace = context.workspace.resolve()
    owner = workspace.stat()
    if os.geteuid() != 0 or owner.st_uid == 0:
        return
    backup = (report.get("backup") or {}).get("path")
    paths = [workspace / published.report_path] if published.report_path else []
    paths += [Path(backup)] if backup else []
    with _warnings_only(log, "could not hand the report or backup to the workspace's owner"):
        for path in paths:
            for item in (path.resolve(), *path.resolve().parents):
                if item == workspace or workspace not in item.parents:
                    break
                if item.stat().st_uid == 0:
                    os.chown(item, owner.st_uid, owner.st_gid)


def _run(
    settings: Settings,
    inputs: ActionInputs,
    context: GitHubContext,
    event: github_event.Event,
    log: workflow.WorkflowLog,
) -> tuple[dict[str, Any], ExitCode]:
    if event.is_pull_request_target and inputs.command != _COMMENT_COMMAND:
        raise Refused(
            "hmig does not plan or apply under pull_request_target: rendering a pull request's "
            ".js migrations runs its code with the base repository's secrets",
            hint="Plan on pull_request with a read-only database role, and publish the report "
            "from a workflow_run job with `command: comment` (README, 'Pull requests from forks').",
        )
    if inputs.command == _COMMENT_COMMAND:
        return _load_report(inputs, context), ExitCode.OK
    workdir = _working_directory(context.workspace, inputs.working_directory)
    invocation = cli.parse(_argv(inputs))
    invocation = replace(invocation, manifest_path=workdir / invocation.manifest_path)
    console = _Console(sys.stdout, settings.secrets())
    title = f"hmig {invocation.command}" + (
        f" · {inputs.environment}" if inputs.environment else ""
    )
    with log.group(title), log.stop_commands():
        result = cli.execute(invocation, settings.with_database_url(inputs.database_url), console)
    return result.report, result.exit_code


class _Console:
    """Human text for the log; the caller has already stopped workflow commands around it."""

    def __init__(self, stream: TextIO, secrets: Sequence[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def line(self, text: str = "") -> None:
        print(reporting.redact(text, self._secrets), file=self._stream, flush=True)


def _argv(inputs: ActionInputs) -> list[str]:
    """`command` and `args` in the CLI's grammar; the environment and manifest from their inputs."""
    try:
        extra = shlex.split(inputs.args)
    except ValueError as exc:
        raise ConfigurationError(f"input `args` cannot be split like a shell would: {exc}") from exc
    for word in extra:
        option = word.split("=", 1)[0]
        if option in _OWN_INPUTS:
            own = _OWN_INPUTS[option]
            raise ConfigurationError(
                f"input `args` sets {option}",
                hint=f"Use the `{own}` input instead."
                if own
                else "The Action writes the JSON report itself (output `report-path`).",
            )
    argv = [inputs.command, "--manifest", inputs.manifest, *extra]
    if inputs.environment:
        argv += ["--env", inputs.environment]
    return argv


def _working_directory(workspace: Path, relative: str) -> Path:
    """`working-directory`, which must stay inside the workspace (the repository)."""
    root = workspace.resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ConfigurationError(
            f"input `working-directory` ({relative!r}) points outside the workspace {root}",
            hint="Give a path inside the repository, relative to its root.",
        )
    if not path.is_dir():
        raise ConfigurationError(f"input `working-directory`: {relative!r} is not a directory")
    return path


def _load_report(inputs: ActionInputs, context: GitHubContext) -> dict[str, Any]:
    """The report another job uploaded: untrusted data, validated before anything uses it."""
    words = shlex.split(inputs.args)
    if len(words) != 2 or words[0] != "--report":
        raise ConfigurationError(
            "`command: comment` needs `args: --report PATH` (the JSON report to publish)"
        )
    path = (_working_directory(context.workspace, inputs.working_directory) / words[1]).resolve()
    if context.workspace.resolve() not in path.parents:
        raise ConfigurationError(f"the report {words[1]} lies outside the workspace")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(loaded, reporting.report_schema())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the report {words[1]}: {exc}") from exc
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ConfigurationError(
            f"{words[1]} is not an hmig report: at {where}: {exc.message}"
        ) from exc
    report: dict[str, Any] = loaded
    return report


def _error_report(error: HmigError, inputs: ActionInputs | None) -> dict[str, Any]:
    """The report of a run that stopped before its command ran (bad input, refused event)."""
    command = inputs.command if inputs and inputs.command in cli.COMMAND_NAMES else None
    return reporting.build_report(
        command=command or "validate",
        environment=inputs.environment if inputs else None,
        target=None,
        outcome=Outcome(error.outcome),
        exit_code=error.exit_code,
        hmig_version=__version__,
        error=error,
    )


def _with_context(
    report: Mapping[str, Any], context: GitHubContext, event: github_event.Event | None
) -> dict[str, Any]:
    """Fill in where the run happened, unless the report came from another run (`comment`).

    Another run's context is untrusted (a fork wrote it): its run link is kept only when it
    points at this repository's runs.
    """
    own = report.get("context")
    if own:
        runs = f"{context.server_url.rstrip('/')}/{context.repository}/actions/runs/"
        run_url = own.get("run_url")
        if not (isinstance(run_url, str) and re.fullmatch(re.escape(runs) + r"\d+", run_url)):
            run_url = None
        return {**report, "context": {**own, "run_url": run_url}}
    sha = (event.head_sha if event else None) or context.sha
    return {
        **report,
        "context": {
            "event": context.event_name or "unknown",
            "repository": context.repository,
            "pull_request": event.pull_number if event else None,
            "sha": sha,
            "run_url": context.run_url,
        },
    }


@contextmanager
def _warnings_only(log: workflow.WorkflowLog, what: str) -> Iterator[None]:
    """GitHub trouble becomes one warning; the migration result stands."""
    try:
        yield
    except (HmigError, OSError) as exc:
        log.annotation("warning", f"{what}: {exc}")


def _publish(
    report: dict[str, Any],
    *,
    settings: Settings,
    inputs: ActionInputs | None,
    context: GitHubContext,
    log: workflow.WorkflowLog,
    foreign: bool,
) -> _Published:
    """Report file, annotations, job summary and PR comment, each failing on its own."""
    report_path: str | None = None
    with _warnings_only(log, "could not write the JSON report"):
        report_path = _save_report(report, context=context, inputs=inputs, settings=settings)
    if not foreign:  # another run's files and lines are not in this checkout
        _annotate(report, inputs=inputs, log=log)
    if context.summary_path is not None:
        with _warnings_only(log, "could not write the job summary"):
            workflow.append_summary(context.summary_path, markdown.summary(report))
    comment_url: str | None = None
    if inputs is not None and inputs.comment != "never":
        comment_url = _comment(report, inputs=inputs, context=context, log=log)
    return _Published(report_path=report_path, comment_url=comment_url)


def _save_report(
    report: Mapping[str, Any],
    *,
    context: GitHubContext,
    inputs: ActionInputs | None,
    settings: Settings,
) -> str:
    """The JSON report, in the workspace so `actions/upload-artifact` can take it."""
    environment = report.get("environment") or (inputs.environment if inputs else None)
    name = f"{environment or 'default'}-{report.get('command', 'unknown')}.json"
    path = context.workspace / ".hmig" / "reports" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    path.write_text(reporting.redact(text, settings.secrets()) + "\n", encoding="utf-8")
    return _relative(path, context.workspace)


def _relative(path: Path, workspace: Path) -> str:
    """A path a later step can use: relative to the workspace when it lies inside it."""
    try:
        return str(path.resolve().relative_to(workspace.resolve()))
    except ValueError:
        return str(path)


def _annotate(
    report: Mapping[str, Any], *, inputs: ActionInputs | None, log: workflow.WorkflowLog
) -> None:
    """Errors and warnings where they happened, within GitHub's 10 per kind (§2.3)."""
    base = _files_base(inputs)
    errors: list[_Annotation] = []
    warnings: list[_Annotation] = []
    failure = report.get("failure")
    if failure:
        errors.append(
            _Annotation(
                title=(
                    f"COMMIT failed after migration {failure['migration']}"
                    if failure.get("at_commit") is True
                    else f"Migration {failure['migration']} failed"
                ),
                message=_failure_text(failure),
                file=_file(base, failure.get("file")),
                line=failure.get("line"),
                col=failure.get("column"),
            )
        )
    error = report.get("error")
    if error:
        text = error["message"] + (f"\n{error['hint']}" if error.get("hint") else "")
        errors.append(_Annotation(title="hmig could not run", message=text))
    for finding in report.get("findings") or ():
        if finding.get("severity") == "error":
            errors.append(
                _Annotation(
                    title=f"Lint: {finding['rule']}",
                    message=finding["message"],
                    file=_file(base, finding.get("file")),
                    line=finding.get("line"),
                    col=finding.get("column"),
                )
            )
    for notice in report.get("warnings") or ():
        warnings.append(
            _Annotation(
                title=notice["code"],
                message=notice["message"],
                file=_file(base, notice.get("file")),
                line=notice.get("line"),
            )
        )
    drift = report.get("drift") or {}
    for finding in drift.get("findings") or ():
        target = errors if drift.get("fail") else warnings
        text = finding["message"] + (f"\n{finding['hint']}" if finding.get("hint") else "")
        target.append(_Annotation(title=f"Drift: {finding['object']}", message=text))
    _emit(log, "error", errors)
    _emit(log, "warning", warnings)


@dataclass(frozen=True, slots=True)
class _Annotation:
    title: str
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None


def _emit(log: workflow.WorkflowLog, level: str, annotations: Sequence[_Annotation]) -> None:
    """At most 10 of a kind are kept: 9 and a count of the rest, rather than a silent cut."""
    shown = list(annotations)
    if len(shown) > _ANNOTATIONS_PER_KIND:
        rest = len(shown) - (_ANNOTATIONS_PER_KIND - 1)
        shown = shown[: _ANNOTATIONS_PER_KIND - 1]
        shown.append(
            _Annotation(title=f"{rest} more", message=f"{rest} more {level}s: see the job summary")
        )
    for item in shown:
        log.annotation(
            level, item.message, title=item.title, file=item.file, line=item.line, col=item.col
        )


def _files_base(inputs: ActionInputs | None) -> Path:
    """Report paths are relative to the manifest's folder; annotations want the workspace's."""
    if inputs is None:
        return Path()
    return Path(inputs.working_directory) / Path(inputs.manifest).parent


def _file(base: Path, path: str | None) -> str | None:
    if not path:
        return None
    joined = Path(path) if Path(path).is_absolute() else base / path
    return joined.as_posix().removeprefix("./")


def _failure_text(failure: Mapping[str, Any]) -> str:
    parts = [failure["message"]]
    for key in ("detail", "hint", "advice"):
        if failure.get(key):
            parts.append(str(failure[key]))
    return "\n".join(parts)


def _comment(
    report: Mapping[str, Any],
    *,
    inputs: ActionInputs,
    context: GitHubContext,
    log: workflow.WorkflowLog,
) -> str | None:
    """Create or update this environment's comment on every PR the run belongs to."""
    if not inputs.github_token:
        log.annotation(
            "warning",
            "no GitHub token, so no PR comment: the report is in the job summary",
            title="hmig comment skipped",
        )
        return None
    client = github_client.GitHubClient(
        api_url=context.api_url, token=inputs.github_token, user_agent=_USER_AGENT
    )
    url: str | None = None
    with _warnings_only(log, "could not post the PR comment (the migration result stands)"):
        numbers = _pull_requests(client, report=report, inputs=inputs, context=context)
        body = markdown.comment(report)
        create = inputs.comment == "always" or _worth_a_new_comment(report)
        author = github_comments.our_login(client) if numbers else github_comments.BOT_LOGIN
        for number in numbers:
            faults.reached("posting-comment")
            posted = github_comments.upsert(
                client,
                repository=context.repository or "",
                number=number,
                marker=markdown.marker(report.get("environment")),
                author=author,
                body=body,
                create=create,
            )
            if posted.comment is not None and posted.comment.author != author:
                log.annotation(
                    "warning",
                    f"GitHub recorded the comment's author as {posted.comment.author!r}, not "
                    f"{author!r}: the next run will not find it and will post a new one",
                    title="hmig comment author",
                )
            url = (posted.comment.url if posted.comment else None) or url
    return url


def _worth_a_new_comment(report: Mapping[str, Any]) -> bool:
    """`comment: on-change` opens a thread only when a reviewer has something to look at."""
    drift = report.get("drift") or {}
    return bool(
        report.get("pending")
        or drift.get("findings")
        or report.get("outcome") in (Outcome.FAILED, Outcome.DRIFT, Outcome.ERROR)
    )


def _pull_requests(
    client: github_client.GitHubClient,
    *,
    report: Mapping[str, Any],
    inputs: ActionInputs,
    context: GitHubContext,
) -> list[int]:
    """The PRs this run reports to: the event's, the commit's after a merge, or the report's."""
    own = report.get("context") or {}
    if not context.repository:
        return []
    if inputs.command == _COMMENT_COMMAND:
        return _checked_report_pull(client, own=own, context=context)
    if own.get("pull_request"):
        return [int(own["pull_request"])]
    if context.event_name in ("push", "workflow_dispatch", "merge_group") and context.sha:
        pulls = github_comments.pulls_for_commit(
            client, repository=context.repository, sha=context.sha
        )
        # The endpoint also lists open PRs that merely contain the commit: the merged one first.
        return [p.number for p in pulls if p.merged] or [
            p.number for p in pulls if p.state == "open"
        ]
    return []


def _checked_report_pull(
    client: github_client.GitHubClient, *, own: Mapping[str, Any], context: GitHubContext
) -> list[int]:
    """A report from another run may be forged (fork PRs write it): post only where it belongs.

    Its repository must be this one, and its PR's head must be the commit that run built.
    """
    number, sha, repository = own.get("pull_request"), own.get("sha"), context.repository
    if repository is None or own.get("repository") != repository or not number or not sha:
        raise ConfigurationError(
            "the report names no pull request of this repository, so it is not posted"
        )
    head = github_comments.pull_head_sha(client, repository=repository, number=number)
    if head != sha:
        raise ConfigurationError(
            f"the report is for {sha[:12]}, but pull request #{number} is now at "
            f"{(head or '?')[:12]}: not posted (a newer run will report)"
        )
    return [int(number)]


def _write_outputs(
    report: Mapping[str, Any], *, context: GitHubContext, published: _Published
) -> None:
    """Step outputs (action.yml lists them); paths relative to the workspace."""
    if context.output_path is None:
        return
    command = report.get("command")
    pending = len(report.get("pending") or ())
    ran = len(report.get("ran") or ())
    at_start = {"apply": pending + ran, "rollback": max(pending - ran, 0)}.get(
        str(command), pending
    )
    backup = report.get("backup") or {}
    drift = report.get("drift") or {}
    workflow.write_outputs(
        context.output_path,
        {
            "outcome": str(report.get("outcome", "")),
            "pending-count": str(at_start),
            "applied-count": str(ran if command == "apply" else 0),
            "drift": "true" if drift.get("findings") else "false",
            "backup-path": _relative(Path(backup["path"]), context.workspace)
            if backup.get("path")
            else "",
            "report-path": published.report_path or "",
            "comment-url": published.comment_url or "",
        },
    )
