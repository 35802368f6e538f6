"""What a person reads after a scan: a progress bar while it runs, one line per account
(verdict, failing checks, deciding layer and policy), then per failing account the fixes,
each with the exact JSON to apply. Works from stored rows (`vaultscan results`) or from a
fresh ScanReport, converted to the same row shape as storage.repository.latest_results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from scanner.model import LAYER_WORDS, Account, is_key_state_check
from scanner.policy.arn import role_name
from scanner.remediation import merge_fixes
from scanner.runner import ScanReport
from scanner.vocabulary import AccountStatus, CheckStatus

Row = dict[str, Any]
# fixes that add permissions: one policy document per role / boundary covers them all
MERGED_KINDS = ("add-identity-statement", "add-boundary-statement")
VERDICT_STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "yellow"}


def make_console(*, stderr: bool = False) -> Console:
    # Wide enough for ARNs when output is piped or captured (rich defaults to 80 there).
    console = Console(stderr=stderr, soft_wrap=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=160)
    return console


@contextmanager
def scan_progress(console: Console) -> Iterator[Any]:
    """A progress bar; yields the runner's progress callback (done, total, account).
    Only on a terminal: in a pipe or a CI log it would leave just an empty line."""
    if not console.is_terminal:
        yield lambda done, total, account: None
        return
    columns = (
        TextColumn("[bold]scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("accounts"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=None)

        def update(done: int, total: int, account: Account | None) -> None:
            label = f"{account.name or account.id}" if account else ""
            progress.update(task, completed=done, total=total, description=label)

        yield update


# --- rows -----------------------------------------------------------------------------


def report_rows(report: ScanReport) -> list[Row]:
    """The results of a fresh scan in the shape of stored rows, plus unreadable accounts."""
    rows: list[Row] = []
    for outcome in report.summary.outcomes:
        account = outcome.account
        base = {
            "account_id": account.id,
            "account_name": account.name,
            "ou_path_names": account.ou_path_names,
        }
        if outcome.status == AccountStatus.ERROR:
            rows.append(
                {
                    **base,
                    "region": "",
                    "role_arn": "",
                    "check": "(account)",
                    "status": CheckStatus.ERROR,
                    "message": f"account could not be read: {outcome.error}",
                }
            )
        rows += [{**base, **result.verdict_fields()} for result in outcome.results]
    return rows


def _by_account(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row["account_id"], []).append(row)
    return grouped


def _by_account_name(rows: list[Row]) -> list[tuple[str, list[Row]]]:
    """(account id, its rows) in the order of the accounts' names."""
    return sorted(_by_account(rows).items(), key=lambda item: item[1][0].get("account_name") or "")


def account_verdict(rows: list[Row]) -> str:
    statuses = {row["status"] for row in rows}
    if CheckStatus.FAIL in statuses:
        return "FAIL"
    if CheckStatus.ERROR in statuses:
        return "ERROR"
    return "PASS"


def _role_name(arn: str | None) -> str:
    return role_name(arn) if arn else ""


def _where(row: Row) -> str:
    policy = row.get("policy") or ""
    statement = row.get("statement")
    return f"{policy} / {statement}" if statement else policy


# --- tables ---------------------------------------------------------------------------


def verdict_table(rows: list[Row], title: str = "Verdict per account") -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("Account")
    table.add_column("OU path")
    table.add_column("Verdict")
    table.add_column("Failing checks (regions)")
    table.add_column("Layer")
    table.add_column("Policy / statement", overflow="fold")
    for account_id, account_rows in _by_account_name(rows):
        first = account_rows[0]
        verdict = account_verdict(account_rows)
        bad = [row for row in account_rows if row["status"] != CheckStatus.PASS]
        checks: dict[str, list[str]] = {}
        for row in bad:
            checks.setdefault(row["check"], []).append(row.get("region") or "")
        failing = "\n".join(
            f"{check} ({', '.join(r for r in regions if r)})" if any(regions) else check
            for check, regions in checks.items()
        )
        layers = sorted({layer_words(row) for row in bad} - {""})
        places = sorted({_short_policy(_where(row)) for row in bad} - {""})
        table.add_row(
            f"{first.get('account_name') or ''}\n{account_id}",
            first.get("ou_path_names") or "",
            Text(verdict, style=VERDICT_STYLE[verdict]),
            failing,
            "\n".join(layers),
            "\n".join(places),
        )
    return table


def layer_words(row: Row) -> str:
    """The deciding layer in words; a key that cannot be used (`kms:KeyState`, for the
    configured key or a vault's) is decided by no policy: its layer is the key's state."""
    words = LAYER_WORDS.get(row.get("deciding_layer") or "", "")
    failing = row.get("status") == CheckStatus.FAIL
    if not words and failing and is_key_state_check(row.get("check", "")):
        return "key state"
    return words


def _short_policy(text: str) -> str:
    # key policies are named by their key ARN, one per region: the table says which layer
    if text.startswith("key policy of arn:"):
        _, _, statement = text.partition(" / ")
        return f"key policy / {statement}" if statement else "key policy"
    return text


def results_table(rows: list[Row]) -> Table:
    table = Table(title="Latest verdicts", title_justify="left")
    for column in ("Account", "Region", "Role", "Check", "Status", "Layer"):
        table.add_column(column, no_wrap=True)
    table.add_column("Why", overflow="fold", ratio=1)
    for row in rows:
        status = row["status"].upper()
        table.add_row(
            f"{row.get('account_name') or ''}\n{row['account_id']}".strip(),
            row.get("region") or "",
            _role_name(row.get("role_arn")),
            row["check"],
            Text(status, style=VERDICT_STYLE.get(status, "")),
            layer_words(row),
            row.get("message") or "",
        )
    return table


# --- fixes ----------------------------------------------------------------------------


def fix_groups(rows: list[Row]) -> list[dict[str, Any]]:
    """Failing rows of one account grouped by the fix they need: checks and regions that
    share a fix are shown once. Missing identity permissions of a role are merged into
    one policy document (one statement per service), as AWS's example policy does."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    mergeable = []
    for row in rows:
        if row["status"] == CheckStatus.PASS:
            continue
        fix = row.get("remediation") or {}
        kind = fix.get("kind", "")
        if kind in MERGED_KINDS:
            mergeable.append(fix)
            key: tuple[Any, ...] = (kind, fix.get("target"))
        else:
            statement = json.dumps(fix.get("statement"), sort_keys=True)
            key = (kind, statement, row.get("deciding_layer"), row.get("statement"), row["status"])
        group = groups.setdefault(
            key,
            {
                "kind": kind,
                "checks": [],
                "regions": [],
                "messages": [],
                "fix": fix,
                "commands": [],
                "status": row["status"],
                "layer": row.get("deciding_layer"),
            },
        )
        for name, value in (("checks", row["check"]), ("regions", row.get("region"))):
            if value and value not in group[name]:
                group[name].append(value)
        if row.get("message") and not group["messages"]:
            group["messages"].append(row["message"])
        for command in fix.get("commands") or []:
            if command not in group["commands"]:
                group["commands"].append(command)
    merged = {kind: merge_fixes(mergeable, kind) for kind in MERGED_KINDS}
    for (kind, *rest), group in groups.items():
        if kind in MERGED_KINDS:
            group["document"] = merged[kind].get(rest[0])
    return list(groups.values())


def render_fixes(console: Console, rows: list[Row]) -> None:
    """Per failing account: what fails, why (one sentence) and the fix to apply."""
    for account_id, account_rows in _by_account_name(rows):
        verdict = account_verdict(account_rows)
        if verdict == "PASS":
            continue
        first = account_rows[0]
        console.print()
        console.rule(
            f"[bold]{first.get('account_name') or account_id}[/] ({account_id}) "
            f"{first.get('ou_path_names') or ''}: "
            f"[{VERDICT_STYLE[verdict]}]{verdict}[/]",
            align="left",
        )
        for group in fix_groups(account_rows):
            regions = ", ".join(group["regions"])
            console.print(
                f"  [bold]{group['status'].upper()}[/] {', '.join(group['checks'])}"
                + (f"  [dim]({regions})[/]" if regions else ""),
                highlight=False,
            )
            for message in group["messages"]:
                console.print(f"    why: {message}", highlight=False, soft_wrap=True)
            _render_fix(console, group)


def _render_fix(console: Console, group: dict[str, Any]) -> None:
    fix = group["fix"] or {}
    if not fix:
        return
    console.print(f"    fix: {fix.get('summary', '')}", highlight=False, soft_wrap=True)
    document = group.get("document") or fix.get("statement")
    if document:
        text = json.dumps(document, indent=2)
        console.print(Text("\n".join("      " + line for line in text.splitlines())))
    for command in group["commands"]:
        console.print(f"      $ {command}", highlight=False, soft_wrap=True)


def render_totals(console: Console, rows: list[Row]) -> None:
    statuses = [row["status"] for row in rows if row["check"] != "(account)"]
    accounts = _by_account(rows)
    verdicts = [account_verdict(account_rows) for account_rows in accounts.values()]
    disagreements = sum(1 for row in rows if row.get("disagreement"))
    console.print(
        f"[bold]{len(accounts)}[/] accounts: [green]{verdicts.count('PASS')} pass[/], "
        f"[red]{verdicts.count('FAIL')} fail[/], [yellow]{verdicts.count('ERROR')} error[/]  ·  "
        f"[bold]{len(statuses)}[/] checks: {statuses.count('pass')} pass, "
        f"{statuses.count('fail')} fail, {statuses.count('error')} error  ·  "
        f"{disagreements} simulator disagreement(s)",
        highlight=False,
    )
