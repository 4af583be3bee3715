"""Read YAML with PyYAML's safe loader while keeping the line/column of every node.

Only ``yaml.SafeLoader`` is used: a product file can never construct Python objects.
Every failure of :func:`load_marked` is a ``yaml.YAMLError`` with a mark: bad explicitly
tagged scalars, impossible dates, collections nested deeper than :data:`MAX_DEPTH` and alias
bombs included. :func:`load_plain` reads the common case, a document for which
``load_marked`` would find nothing to report, without the marks (they only locate errors).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import yaml

try:  # the C loader is ~5x faster; both are safe loaders
    from yaml import CSafeLoader as _SafeLoader
    _BYTE_OFFSETS = True  # libyaml gives a reader error's position in bytes of UTF-8
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _SafeLoader
    _BYTE_OFFSETS = False

Path = tuple  # a data path, e.g. ("inputs", 0, "path")

MAX_DEPTH = 64  # product files nest about 8 levels; libyaml's C composer segfaults near 50,000
MAX_NODES = 100_000  # values counted with aliases expanded; product files hold a few hundred


class _Loader(_SafeLoader):
    """The safe loader; a scalar it cannot construct raises a located ``ConstructorError``."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct ``node``; ``!!int foo`` or ``2013-02-30`` raise a YAMLError, not ValueError."""
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            tag = node.tag.rsplit(":", 1)[-1]
            if isinstance(node, yaml.ScalarNode):
                shown = repr(node.value if len(node.value) <= 60 else node.value[:57] + "...")
            else:
                shown = f"this {node.id}"
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read {shown} as !!{tag} ({exc})",
                problem_mark=node.start_mark) from exc


@dataclass
class MarkedDocument:
    """A parsed YAML document and where each of its nodes stands in the file.

    Attributes:
        data: the plain Python data (dicts, lists, scalars) as ``yaml.safe_load`` would return.
        marks: data path -> (line, column), both 1-based. Mapping keys are marked at the key.
        duplicate_keys: data paths of keys that appear twice in one mapping (PyYAML keeps the
            last silently; we report them).
    """

    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicate_keys: list[Path] = field(default_factory=list)

    def locate(self, path: Path) -> tuple[int, int]:
        """Return the (line, column) of ``path`` or of its nearest marked ancestor; (1, 1) if none."""
        path = tuple(path)
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), (1, 1))


def load_marked(text: str) -> MarkedDocument:
    """Parse one YAML document with the safe loader and record node marks.

    Args:
        text: the YAML source.

    Returns:
        a :class:`MarkedDocument`; ``data`` is None for an empty document.

    Raises:
        yaml.YAMLError: on a syntax error (its ``problem_mark`` gives line and column), when
            the stream holds more than one document, or when it nests or expands too much.
    """
    try:
        _check_nesting(text)
    except yaml.reader.ReaderError as exc:  # a character YAML forbids; it has no mark
        raise _reader_error(text, exc) from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return MarkedDocument(data=None)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    doc = MarkedDocument(data=data)
    _walk(node, (), doc, itertools.count())
    return doc


class _NotPlain(Exception):
    """The document is not plain (see :func:`load_plain`)."""


class _PlainLoader(_SafeLoader):
    """The safe loader, stopping at what :func:`load_plain` leaves to :func:`load_marked`.

    The composer calls ``descend_resolver`` before it composes each node and ``ascend_resolver``
    after, so counting there raises :class:`_NotPlain` at the first node deeper than
    :data:`MAX_DEPTH` (before libyaml's recursive composer can go deeper) or past
    :data:`MAX_NODES` nodes. A mapping with a duplicate key raises it too.
    """

    _depth = 0
    _nodes = 0

    def descend_resolver(self, parent: Any, index: Any) -> None:
        """Count the node about to be composed; raise :class:`_NotPlain` past the limits."""
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH or self._nodes > MAX_NODES:
            raise _NotPlain
        super().descend_resolver(parent, index)

    def ascend_resolver(self) -> None:
        """The node is composed: one level up."""
        self._depth -= 1
        super().ascend_resolver()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """Construct the mapping; keys compare as in :func:`_walk` (merge keys flattened)."""
        mapping = super().construct_mapping(node, deep)
        keys = {k.value if isinstance(k, yaml.ScalarNode) else repr(k.value) for k, _ in node.value}
        if len(keys) != len(node.value):
            raise _NotPlain
        return mapping


def load_plain(text: str) -> Any:
    """Parse a plain YAML document with the safe loader, without marks.

    Plain: one non-empty document without ``&`` (so without anchors, hence without aliases),
    with no duplicate key, no node deeper than :data:`MAX_DEPTH` (scalars included), at most
    :data:`MAX_NODES` nodes, and no value the safe constructor rejects. Such a document is
    composed and constructed exactly as :func:`load_marked` does it (same loader, minus the
    error wrapping), so the data equals ``load_marked(text).data``, and ``load_marked`` would
    raise nothing and find no duplicate key in it. What is not plain (a ``&`` in a SQL string
    included) is for ``load_marked``, which reports what is wrong, if anything.

    Args:
        text: the YAML source.

    Returns:
        the data, or None when the document is not plain (or empty).
    """
    if "&" in text:
        return None
    loader = _PlainLoader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    except (yaml.YAMLError, _NotPlain, ArithmeticError, AttributeError, LookupError, TypeError,
            ValueError, RecursionError):
        return None
    finally:
        loader.dispose()


def _check_nesting(text: str) -> None:
    """Raise a YAMLError when collections nest deeper than MAX_DEPTH, reading events only.

    Runs before composing: libyaml's composer recurses in C and kills the process on a deep
    enough ``[[[[...`` instead of raising.
    """
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_much(f"collections nested deeper than {MAX_DEPTH} levels", event)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


def _reader_error(text: str, exc: yaml.reader.ReaderError) -> yaml.MarkedYAMLError:
    """The ReaderError, with a mark computed from its offset into ``text``."""
    offset = exc.position
    if _BYTE_OFFSETS:
        offset = len(text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
    before = text[:offset]
    mark = yaml.Mark(None, offset, before.count("\n"), offset - before.rfind("\n") - 1, None, None)
    return yaml.MarkedYAMLError(
        problem=f"unacceptable character #x{exc.character:04x}: {exc.reason}", problem_mark=mark)


def _too_much(problem: str, node: yaml.Node | yaml.Event) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(problem=problem, problem_mark=node.start_mark)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: Path, doc: MarkedDocument, counter: itertools.count) -> None:
    """Record the marks under ``node``; aliases are followed, so ``counter`` and the path length
    bound the work (an alias bomb or a recursive alias raises a YAMLError)."""
    if next(counter) > MAX_NODES:
        raise _too_much(f"the document expands to over {MAX_NODES} values through aliases", node)
    if len(path) > MAX_DEPTH:
        raise _too_much(f"values nested deeper than {MAX_DEPTH} levels (a recursive alias?)", node)
    doc.marks.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            child = (*path, key)
            if key in seen:
                doc.duplicate_keys.append(child)
                doc.marks[child] = _mark(key_node)
            seen.add(key)
            doc.marks.setdefault(child, _mark(key_node))
            _walk(value_node, child, doc, counter)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), doc, counter)
