"""Errors raised by the retrieval engine."""


class SearchError(Exception):
    """Base class for retrieval engine errors."""


class IndexMissingError(SearchError):
    """No index has been built in this directory yet."""


class IndexCorruptError(SearchError):
    """The index directory is damaged or incomplete."""


class StaleBuildError(SearchError):
    """A document to carry over unchanged is not in the build it was to be carried from."""


class EmbedderError(SearchError):
    """The embedding model could not be loaded."""
