"""Plain data passed in and out of the engine."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Passage:
    """A section of a document: the unit that is shown as an answer."""

    id: str
    heading: str
    text: str


@dataclass(frozen=True)
class Document:
    """A document to index: a title, optional aliases and its passages."""

    id: str
    title: str
    passages: tuple[Passage, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    """One ranked document with its best passage and the evidence behind its score."""

    doc_id: str
    passage_id: str
    score: float
    confidence: float
    dense: float
    lexical: float
    # The chunk of the passage that matched best, for snippets.
    chunk: str = ""
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Results:
    """A ranked list of hits and whether the best one is confident enough to answer."""

    hits: tuple[Hit, ...]
    answered: bool
    threshold: float
