"""The `kb` command line: parses arguments, calls the library, turns kb errors into messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kb.errors import KbError
from kb.settings import Settings


def _settings(ctx: click.Context, **overrides) -> Settings:
    try:
        return Settings.load(**overrides)
    except KbError as exc:
        raise click.ClickException(exc.message) from exc


def data_option(f):
    return click.option("--data", type=click.Path(path_type=Path), help="Data directory (default: KB_DATA or ./data).")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kb")
def main() -> None:
    """kb: a self-hosted knowledge base that answers requests before they become tickets.

    Typical use: `kb index` to index articles/, then `kb serve` to run the help center.
    """


@main.command()
@click.option("--articles", type=click.Path(path_type=Path), help="Articles directory (default: KB_ARTICLES or ./articles).")
@data_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def index(ctx: click.Context, articles: Path | None, data: Path | None, quiet: bool) -> None:
    """Index the Markdown articles (only new or changed ones are re-embedded)."""
    from kb.indexer import index_directory, make_embedder

    settings = _settings(ctx, articles=articles, data=data)
    embedder = make_embedder(settings)
    bar = None

    def on_total(total: int) -> None:
        nonlocal bar
        if not quiet and total:
            bar = click.progressbar(length=total, label="Embedding passages", file=sys.stderr)
            bar.__enter__()

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        summary = index_directory(settings, embedder, progress=progress, on_total=on_total)
    except KbError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for error in summary.skipped:
        click.secho(f"skipped {error.message}", fg="yellow", err=True)
    click.echo(
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
def search(ctx: click.Context, query: str, locale: str | None, limit: int, as_json: bool, data: Path | None) -> None:
    """Search the index: ranked articles with the answering passage and a confidence."""
    from kb.desk import Desk
    from kb.indexer import make_embedder

    settings = _settings(ctx, data=data)
    desk = Desk(settings, make_embedder(settings), db=None)
    try:
        desk.load()
        answer = desk.suggest(query, limit=limit, locale=locale, record=False)
    except KbError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps(asdict(answer), ensure_ascii=False, indent=2))
        return
    if not answer.answered:
        click.secho("No article answers this confidently: a ticket is the right next step.", fg="yellow")
        if answer.items:
            click.echo("Closest matches:")
    if answer.fallback:
        click.echo(f"(no confident answer in {answer.locale}; showing other languages)")
    for n, item in enumerate(answer.items, 1):
        click.secho(f"{n}. {item.title}  [{item.confidence:.2f}]", bold=True)
        click.echo(f"   {item.url}  ({item.section})")
        click.echo("   " + item.passage.replace("\n", "\n   "))


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@data_option
@click.option("--articles", type=click.Path(path_type=Path), help="Articles directory indexed when no index exists yet.")
@click.option("--workers", type=int, help="Worker processes.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, data: Path | None,
          articles: Path | None, workers: int | None) -> None:
    """Run the help center, widget and API (indexes the articles first if there is no index)."""
    from kb.web.server import run

    settings = _settings(ctx, host=host, port=port, data=data, articles=articles, workers=workers)
    try:
        run(settings)
    except KbError as exc:
        raise click.ClickException(exc.message) from exc


if __name__ == "__main__":  # pragma: no cover
    main()
