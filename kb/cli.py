"""The `kb` command line: parses arguments, calls the library, turns kb errors into messages."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

from search.dense import KINDS as DENSE_KINDS
from search.embed import BACKENDS

from kb import logs
from kb.errors import KbError
from kb.settings import Settings
from kb.insight.gaps import STATUSES as GAP_STATUSES
from kb.staff.auth import ROLES
from kb.tickets.intake import STATUSES as TICKET_STATUSES

if TYPE_CHECKING:
    from kb.serving.desk import Desk
    from kb.storage.database import Database

F = TypeVar("F", bound=Callable[..., Any])
# C0/C1 controls and bidi overrides: escaped in everything printed, so text people typed (a query,
# a ticket subject) can never move the cursor, retitle the terminal or hide what follows.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(text: object, one_line: bool = False) -> str:
    """Text safe for a terminal: control characters shown as escapes (newlines too if one_line)."""
    out = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                           str(text))
    return out.replace("\n", "\\n") if one_line else out


def echo(text: object = "", **style: Any) -> None:
    """Print text made safe by `plain` (with click's styling keywords)."""
    click.secho(plain(text), **style)


def echo_json(data: Any) -> None:
    """Print JSON; characters JSON leaves raw (C1 controls, bidi overrides) as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    click.echo(_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def message(exc: KbError) -> str:
    """One line for a kb error, with each invalid field on its own line."""
    errors = getattr(exc, "errors", None) or []
    return exc.message + "".join(f"\n  {e['key']}: {e['message']}" for e in errors)


class KbGroup(click.Group):
    """The root command: every kb error becomes a one-line message and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KbError as exc:
            raise click.ClickException(plain(message(exc))) from exc


def _remember_data(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:  # a later --data (after the subcommand) overrides an earlier one
        ctx.find_root().ensure_object(dict)["data"] = value


def data_option(f: F) -> F:
    """--data, accepted before or after any subcommand (`kb --data D gaps link ...` or `kb gaps link ... --data D`)."""
    return click.option("--data", type=click.Path(path_type=Path, file_okay=False), expose_value=False,
                        callback=_remember_data, help="Data directory (default: KB_DATA or ./data).")(f)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    data = ctx.find_root().ensure_object(dict).get("data")
    return Settings.load(data=data, **overrides)


def _database(settings: Settings, create: bool = False) -> Database:
    """The data directory's database; read-only commands pass create=False and refuse a missing one."""
    from kb.storage.startup import open_database

    return open_database(settings, create=create)


def _desk(settings: Settings) -> Desk:
    from kb.content.indexer import make_embedder
    from kb.serving.desk import Desk

    desk = Desk(settings, make_embedder(settings), db=None)
    desk.load()
    return desk


@click.group(cls=KbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kb")
@data_option
@click.option("--verbose", "-v", is_flag=True, help="Also show other libraries' warnings (as KB_LOG_LEVEL=debug does).")
def main(verbose: bool) -> None:
    """kb: a self-hosted knowledge base that answers requests before they become tickets.

    Typical use: `kb index` to index articles/, then `kb serve` to run the help center.
    """
    try:
        level = Settings.load().log_level
    except KbError:
        level = "info"  # a bad setting is reported by the command that loads it
    logs.configure(level, verbose)


@main.command()
@click.option("--articles", type=click.Path(path_type=Path), help="Articles directory (default: KB_ARTICLES or ./articles).")
@data_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def index(ctx: click.Context, articles: Path | None, quiet: bool) -> None:
    """Index the Markdown articles (only new or changed ones are re-embedded)."""
    from kb.content.indexer import index_directory, make_embedder, make_glossary

    settings = _settings(ctx, articles=articles)
    embedder = make_embedder(settings)
    make_glossary(settings)  # parsed into the cache now (~15 s once), not when the server starts
    bar = None

    def on_total(total: int) -> None:
        nonlocal bar
        if not quiet and total:
            bar = click.progressbar(length=total, label="Embedding texts", file=sys.stderr)
            bar.__enter__()

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        summary = index_directory(settings, embedder, progress=progress, on_total=on_total)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for error in summary.skipped:
        echo(f"skipped {error.message}", fg="yellow", err=True)
    echo(
        f"Indexed {summary.articles} articles ({summary.passages} passages) in {summary.seconds:.1f}s: "
        f"{summary.embedded_articles} embedded, {summary.articles - summary.embedded_articles} unchanged, "
        f"{summary.removed_articles} removed, {summary.drafts} drafts not served, "
        f"{len(summary.skipped)} files skipped."
    )


@main.command()
@click.argument("query")
@click.option("--locale", help="Preferred locale, e.g. en or ru.")
@click.option("--limit", default=3, show_default=True, help="Number of results.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_option
@click.pass_context
def search(ctx: click.Context, query: str, locale: str | None, limit: int, as_json: bool) -> None:
    """Search the index: ranked articles with the answering passage and a confidence."""
    answer = _desk(_settings(ctx)).suggest(query, limit=limit, locale=locale, record=False)
    if as_json:
        from dataclasses import asdict

        echo_json(asdict(answer))
        return
    if not answer.answered:
        echo("No article answers this confidently: a ticket is the right next step.", fg="yellow")
        if answer.items:
            echo("Closest matches:")
    if answer.fallback:
        echo(f"(no confident answer in {answer.locale}; showing other languages)")
    for n, item in enumerate(answer.items, 1):
        echo(f"{n}. {item.title}  [{item.confidence:.2f}]", bold=True)
        echo(f"   {item.url}  ({item.section})")
        echo("   " + item.passage.replace("\n", "\n   "))


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@data_option
@click.option("--articles", type=click.Path(path_type=Path), help="Articles directory indexed when no index exists yet.")
@click.option("--workers", type=int, help="Worker processes.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, articles: Path | None, workers: int | None) -> None:
    """Run the help center, widget and API (indexes the articles first if there is no index)."""
    from kb.web.server import run

    run(_settings(ctx, host=host, port=port, articles=articles, workers=workers))


@main.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(TICKET_STATUSES), help="Only tickets in this delivery state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=200, show_default=True, help="Newest tickets to show.")
@data_option
@click.pass_context
def tickets(ctx: click.Context, status: str | None, as_json: bool, limit: int) -> None:
    """List tickets with their delivery state per sink (webhook, email)."""
    if ctx.invoked_subcommand is not None:
        return
    from kb.tickets.intake import list_tickets

    rows = list_tickets(_database(_settings(ctx)), status=status, limit=limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        echo("No tickets.")
    for t in rows:
        echo(f"{t['id']}  {t['created']}  {t['status']:<9}  {plain(t['subject'][:60], one_line=True)}", bold=True)
        for d in t["deliveries"]:
            error = f"  last error: {d['last_error'][:100]}" if d["last_error"] and d["status"] != "delivered" else ""
            echo(f"    {d['sink']:<8} {d['status']:<9} attempts {d['attempts']}{plain(error, one_line=True)}")


@tickets.command("retry")
@click.argument("ids", nargs=-1)
@data_option
@click.pass_context
def tickets_retry(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Make failed deliveries (or those of the given ticket or outbox IDs) pending and deliver now."""
    from kb.tickets.outbox import deliver_all, retry

    settings = _settings(ctx)
    db = _database(settings)
    reset = retry(db, list(ids) or None)
    counts = deliver_all(db, settings)
    echo(f"{reset} deliveries reset; delivered {counts['delivered']}, will retry {counts['retrying']},"
         f" failed {counts['failed']}, left for later {counts['released']}.")


# -- staff, gaps and stats --------------------------------------------------------------------


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@main.group()
@data_option
def user() -> None:
    """Manage staff accounts (writers and owners).

    Writers see the gap board under /admin; owners also see the dashboard.
    """


@user.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="writer or owner.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@data_option
@click.pass_context
def user_add(ctx: click.Context, email: str, role: str, password_stdin: bool) -> None:
    """Create a staff user (argon2id password hash)."""
    from kb.staff.auth import add_user

    add_user(_database(_settings(ctx), create=True), email, role, _password(password_stdin))
    echo(f"Added {role} {email.strip().lower()}.")


@user.command("passwd")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@data_option
@click.pass_context
def user_passwd(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Change a staff user's password."""
    from kb.staff.auth import set_password

    set_password(_database(_settings(ctx)), email, _password(password_stdin))
    echo(f"Password changed for {email.strip().lower()}.")


@main.group(invoke_without_command=True)
@click.option("--refresh", is_flag=True, help="Recompute the gaps from the misses first.")
@click.option("--locale", help="Only gaps of this locale.")
@click.option("--status", type=click.Choice(GAP_STATUSES), help="Only gaps with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as /api/v1/admin/gaps).")
@data_option
@click.pass_context
def gaps(ctx: click.Context, refresh: bool, locale: str | None, status: str | None, as_json: bool) -> None:
    """List content gaps, ranked by impact.

    What people asked that the KB did not answer, grouped by meaning (as /admin/gaps).
    """
    if ctx.invoked_subcommand:
        return
    from kb.clock import iso
    from kb.insight import board
    from kb.insight.gaps import last_refresh, refresh_gaps

    settings = _settings(ctx)
    db = _database(settings)
    if refresh:
        summary = refresh_gaps(db, settings, _desk(settings))
        echo(f"Clustered {summary['misses']} misses into {summary['gaps']} gaps in {summary['seconds']}s.", err=True)
    items = board.list_gaps(db, locale=locale, status=status)
    if as_json:
        echo_json({"refreshed": iso(last_refresh(db)), "gaps": [g.as_dict() for g in items]})
        return
    for g in items:
        echo(f"#{g.id} [{g.status}] {plain(g.label, one_line=True)}", bold=True)
        echo(_gap_lines(g))
    if not items:
        echo("No gaps." + ("" if refresh else " (Run `kb gaps --refresh` to recompute.)"))


def _gap_lines(g: Any) -> str:
    d = g.as_dict()
    replay = f"  replay {g.replay_before} -> {g.replay_after}/{g.replay_total}" if g.replay_after is not None else ""
    fix = f"improve {g.closest_slug}" if g.fix == "improve" else "write a new article"
    terms = plain(", ".join(g.key_terms), one_line=True)
    return (f"   impact {g.impact:.2f}, {g.size} misses, {g.sessions} sessions, {g.locale}, "
            f"{(d['first_seen'] or '')[:10]}..{(d['last_seen'] or '')[:10]}; terms: {terms}\n"
            f"   closest {g.closest_slug or '-'} ({g.closest_confidence:.2f}): {fix}"
            + (f"; linked {g.linked_slug}" if g.linked_slug else "") + replay)


@gaps.command("link")
@click.argument("gap_id", type=int)
@click.argument("slug")
@data_option
@click.pass_context
def gaps_link(ctx: click.Context, gap_id: int, slug: str) -> None:
    """Link a gap to an article (records "before")."""
    from kb.insight.board import link_gap

    settings = _settings(ctx)
    gap = link_gap(_database(settings), _desk(settings), gap_id, slug)
    echo(f"Gap #{gap.id} linked to {gap.linked_slug}: {gap.replay_before}/{gap.replay_total} answered when asked.")


@gaps.command("replay")
@click.argument("gap_id", type=int)
@data_option
@click.pass_context
def gaps_replay(ctx: click.Context, gap_id: int) -> None:
    """Replay a gap against the current index."""
    from kb.insight.board import replay_gap

    settings = _settings(ctx)
    gap = replay_gap(_database(settings), _desk(settings), gap_id)
    echo(f"Gap #{gap.id} ({gap.linked_slug}): {gap.replay_before} -> {gap.replay_after} of {gap.replay_total} answered.")


@main.command()
@click.option("--since", help="First day, YYYY-MM-DD (default: 29 days before --until).")
@click.option("--until", help="Last day, YYYY-MM-DD, included (default: today, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as /api/v1/admin/stats).")
@data_option
@click.pass_context
def stats(ctx: click.Context, since: str | None, until: str | None, as_json: bool) -> None:
    """Print the deflection figures for a date range.

    The same figures and definitions as /admin/dashboard and /api/v1/admin/stats.
    """
    import time

    from kb.insight import stats as metrics

    settings = _settings(ctx)
    result = metrics.compute(_database(settings), settings, metrics.period(since, until), time.time())
    out = result.as_dict()
    if as_json:
        echo_json(out)
        return
    echo(f"{out['since']} .. {out['until']} (UTC, inclusive)", bold=True)
    for key, label in metrics.LABELS.items():
        echo(f"{label:>24}: {out['display'][key]}")
        echo(f"{'':>26}{out['definitions'][key]}", dim=True)
    echo("Top requests", bold=True)
    for r in out["top_requests"][:10]:
        echo(f"  {r['count']:>5}  {r['answered_share'] * 100:>3.0f}% answered  {plain(r['request'], one_line=True)}")


# -- the database (kb/storage): migrations, status, copying SQLite into PostgreSQL ----------------


@main.group("db")
def db_group() -> None:
    """The database: SQLite in the data directory, or PostgreSQL through KB_DATABASE_URL."""


@db_group.command("upgrade")
@data_option
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending schema migrations (kb serve and every writing command also do)."""
    from kb.storage import migrate

    db = _database(_settings(ctx), create=True)
    echo(f"{db.dialect} database at revision {migrate.status(db.engine).current}.")


@db_group.command("status")
@data_option
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Print the engine, the schema revision and any pending migrations (changes nothing)."""
    from kb.storage import migrate
    from kb.storage.engine import database_url, make_engine, sqlite_path

    settings = _settings(ctx)
    url = database_url(settings.database_url, settings.data)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise click.ClickException(plain(f"No kb database in {path.parent} ({path.name} is missing): `kb db upgrade` creates it."))
    engine = make_engine(url)
    try:
        state = migrate.status(engine)
    except Exception as exc:  # any driver error: say which database could not be read
        raise click.ClickException(plain(f"cannot read {url.render_as_string(hide_password=True)}: {exc}")) from exc
    finally:
        engine.dispose()
    echo(f"engine:   {state.engine}\nurl:      {state.url}\nrevision: {state.current or '(none)'}"
         f" (newest {state.head})\npending:  {', '.join(state.pending) or 'none'}")


@db_group.command("copy")
@click.option("--to", "target_url", required=True, help="Target database URL, e.g. postgresql://kb:secret@db/kb.")
@data_option
@click.pass_context
def db_copy(ctx: click.Context, target_url: str) -> None:
    """Copy this data directory's database (with its secrets) into an empty database."""
    from kb.storage.copy import copy_database
    from kb.storage.database import Database
    from kb.storage.engine import database_url

    settings = _settings(ctx)
    source = _database(settings)
    target = Database(database_url(target_url, settings.data))
    counts = copy_database(source, target)
    for table, n in counts.items():
        echo(f"{table:>16}: {n:,} rows")
    echo(f"Copied into {target.url.render_as_string(hide_password=True)}; set KB_DATABASE_URL to use it.")


# -- answer quality: thin wrappers over kb.measure.eval and kb.measure.calibrate ------------------


@main.command("eval")
@click.option("--dataset", "datasets", required=True, multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset folder with articles.jsonl and queries.jsonl (repeatable).")
@click.option("--split", default="test", show_default=True, help="Split to report on (kb fits on dev).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the results as JSON.")
@click.option("--locale", default=None, help="Language of the datasets' articles and requests (default: detected from their text).")
@click.pass_context
def eval_command(ctx: click.Context, datasets: tuple[Path, ...], split: str, json_out: Path | None, locale: str | None) -> None:
    """Compare bm25, dense, dense_max and kb's hybrid on public datasets; print a table per dataset and language."""
    from kb.measure.calibrate import dataset_name
    from kb.measure.eval import evaluate, table
    from kb.content.indexer import make_embedder, make_glossary

    settings = _settings(ctx)
    embedder, glossary = make_embedder(settings), make_glossary(settings)
    results = {}
    for d in datasets:
        name = dataset_name(d)
        results[name] = evaluate(d, embedder, split=split, locale=locale, glossary=glossary)
        click.echo(table(name, results[name]))
    if json_out:
        data = results[dataset_name(datasets[0])] if len(datasets) == 1 else results
        json_out.write_text(json.dumps(data, indent=1) + "\n")


@main.command()
@click.option("--dataset", "datasets", required=True, multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset folder; repeat to pool several. Only the dev split is used.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write fusion and calibration to this file.")
@click.option("--apply/--no-apply", default=True, show_default=True, help="Re-index the KB with the fitted calibration.")
@click.option("--locale", default=None, help="Language of the datasets (default: each one's is detected from its text).")
@data_option
@click.pass_context
def calibrate(ctx: click.Context, datasets: tuple[Path, ...], out: Path | None, apply: bool, locale: str | None) -> None:
    """Fit fusion weights, the answer confidence and the no-answer threshold on dev splits, per request language."""
    from kb.measure import calibrate as cal_lib
    from kb.content.indexer import index_directory, make_embedder, make_glossary

    settings = _settings(ctx)
    embedder = make_embedder(settings)
    tunings, prepared, work = cal_lib.calibrate(datasets, embedder, locale=locale, glossary=make_glossary(settings))
    with work:
        for language, (fusion, cal) in tunings.items():
            click.echo(json.dumps({"locale": language, "fusion": fusion.to_dict(), "threshold": cal.threshold,
                                   "dev": cal.metrics}, indent=1))
        for name, metrics in cal_lib.test_metrics(prepared, tunings).items():
            click.echo(f"{name} test: brier {metrics['brier']:.4f}, ece {metrics['ece']:.4f}")
    if out:
        cal_lib.write(out, tunings)
    if apply:
        fusion, cal = cal_lib.default_tuning(tunings)
        summary = index_directory(settings, embedder, calibration=cal, fusion=fusion, locales=tunings)
        click.echo(f"calibration stored in {summary.path}/manifest.json")


@main.command()
@click.option("--sizes", default="1000,10000", show_default=True, help="Comma-separated KB sizes (articles).")
@click.option("--quick", is_flag=True, help="Tiny run for CI: 200 articles (unless --sizes) and few requests.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the full report as JSON.")
@click.option("--model", help="Embedding model (default: KB_MODEL).")
@click.option("--backend", type=click.Choice(BACKENDS), help="Encoder backend (default: KB_BACKEND).")
@click.option("--threads", type=int, help="Threads per encode call (default: KB_ENCODE_THREADS).")
@click.option("--workers", default=1, show_default=True, help="Server worker processes.")
@click.option("--dense", "dense_kind", type=click.Choice(DENSE_KINDS), default="auto", show_default=True, help="Dense index kind: exact flat, HNSW, or auto by size.")
@click.option("--requests", type=int, help="Requests per phase (default 400, quick 60).")
@click.option("--replicas", help="Instead: suggest req/s through HAProxy with these numbers of replicas on one"
              " PostgreSQL (e.g. 1,2,3), and each part's CPU per request; sizes default to 1000 articles.")
@click.pass_context
def bench(ctx: click.Context, sizes: str, quick: bool, json_out: Path | None, model: str | None, backend: str | None,
          threads: int | None, workers: int, dense_kind: str, requests: int | None, replicas: str | None) -> None:
    """Benchmark index builds and suggest latency on synthetic KBs (in process and over HTTP)."""
    from kb.measure.bench import BenchOptions, run, table

    settings = _settings(ctx, model=model, backend=backend, encode_threads=threads)
    chosen = tuple(int(s) for s in sizes.split(",") if s.strip())
    if ctx.get_parameter_source("sizes") == click.core.ParameterSource.DEFAULT and (quick or replicas):
        chosen = (200,) if quick else (1000,)
    options = BenchOptions(sizes=chosen, model=settings.model, backend=settings.backend, threads=settings.encode_threads, workers=workers,
                           dense_kind=dense_kind, requests=requests or (60 if quick else 400),
                           seconds=20.0 if quick else 60.0, clients=32 if replicas else 16)
    if replicas:
        from kb.measure import scaling

        counts = tuple(int(n) for n in replicas.split(",") if n.strip().isdigit())
        if not counts or len(counts) != len([n for n in replicas.split(",") if n.strip()]) or not all(1 <= n <= 3 for n in counts):
            raise click.BadParameter("comma-separated numbers of replicas from 1 to 3 (deploy/haproxy.cfg names three)",
                                     param_hint="--replicas")
        report = scaling.run(counts, options, log=lambda m: click.echo(m, err=True))
        click.echo(scaling.table(report))
    else:
        report = run(options, log=lambda m: click.echo(m, err=True))
        click.echo(table(report))
    if json_out:
        json_out.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
