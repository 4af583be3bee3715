"""Property: however a valid product file is mangled, loading it either succeeds or raises a
SpecError whose every issue points at a real line of the file with a message."""

from __future__ import annotations

import copy
import string
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dag_factory.spec.errors import SpecError
from dag_factory.spec.loading import load_product_file, load_products
from dag_factory.spec.yaml_marks import load_marked, load_plain
from helpers import PRODUCTS, demo_yaml, products_folder

DEMO_NAMES = sorted(p.stem for p in PRODUCTS.glob("*.yaml"))
YAML_CHARS = string.ascii_letters + string.digits + " \t\n:-[]{},#&*!|>'\"%@`?.\\/\u00e9\u2028\x00"
VALUE_TOKENS = [  # YAML features a product file should not need, put in front of a value
    "&a ", "*a ", "&a [*a] #", "<<: ", "? ", "!!int ", "!!float ", "!!bool ", "!!timestamp ",
    "!!binary ", "!!set ", "!!str ", "!foo ", "2013-02-30 #", "0x #", "[" * 70, "{a: " * 70, "~ #",
    ".inf #", "|\n", ">-\n",
]

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.dates()
           | st.text(max_size=12))
yaml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def node_paths(data, path: tuple = ()) -> list[tuple]:
    """Every path below ``data`` (dict keys and list indexes), parents before children."""
    if isinstance(data, dict):
        items = data.items()
    else:
        items = enumerate(data) if isinstance(data, list) else ()
    paths = []
    for key, value in items:
        paths.append((*path, key))
        paths += node_paths(value, (*path, key))
    return paths


def mapping_paths(data) -> list[tuple]:
    """The paths of every mapping in ``data``, the root ``()`` included."""
    return [p for p in [(), *node_paths(data)] if isinstance(get(data, p), dict)]


def get(data, path: tuple):
    """The value at ``path`` in ``data``."""
    for key in path:
        data = data[key]
    return data


def delete_key(draw, data) -> None:
    """Remove a random key (at any depth) or list item."""
    path = draw(st.sampled_from(node_paths(data)))
    del get(data, path[:-1])[path[-1]]


def replace_value(draw, data) -> None:
    """Replace a random value with a random value of another type."""
    path = draw(st.sampled_from(node_paths(data)))
    parent, old = get(data, path[:-1]), get(data, path)
    parent[path[-1]] = draw(yaml_values.filter(lambda v: type(v) is not type(old)))


def insert_key(draw, data) -> None:
    """Add a random (usually unknown) key with a random value to a random mapping."""
    mapping = get(data, draw(st.sampled_from(mapping_paths(data))))
    mapping[draw(st.text(max_size=10))] = draw(yaml_values)


def duplicate_line(draw, text: str) -> str:
    """Copy a random line to a random place (duplicate keys, broken indentation, ...)."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    line = draw(st.sampled_from(lines))
    at = draw(st.integers(0, len(lines)))
    return "".join(lines[:at] + [line] + lines[at:])


def truncate(draw, text: str) -> str:
    """Cut the text at a random offset."""
    return text[:draw(st.integers(0, len(text)))]


def insert_chars(draw, text: str) -> str:
    """Insert a few random characters, mostly YAML punctuation, at a random offset."""
    at = draw(st.integers(0, len(text)))
    chars = draw(st.text(alphabet=YAML_CHARS, min_size=1, max_size=6) | st.text(max_size=3))
    return text[:at] + chars + text[at:]


def prefix_value(draw, text: str) -> str:
    """Put a YAML tag, anchor, alias, odd scalar or deep nesting in front of a random value."""
    values = [i + 2 for i in range(len(text)) if text.startswith(": ", i)]
    if not values:
        return text
    at = draw(st.sampled_from(values))
    return text[:at] + draw(st.sampled_from(VALUE_TOKENS)) + text[at:]


DATA_MUTATIONS = [delete_key, replace_value, insert_key]
TEXT_MUTATIONS = [duplicate_line, truncate, insert_chars, prefix_value]


@st.composite
def mangled_specs(draw) -> str:
    """A demo product's text after 0-2 data-level and then 0-2 text-level mutations."""
    name = draw(st.sampled_from(DEMO_NAMES))
    text = demo_yaml(name)
    data_mutations = draw(st.lists(st.sampled_from(DATA_MUTATIONS), max_size=2))
    if data_mutations:
        data = copy.deepcopy(yaml.safe_load(text))
        for mutate in data_mutations:
            if node_paths(data):
                mutate(draw, data)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    for mutate in draw(st.lists(st.sampled_from(TEXT_MUTATIONS), max_size=2)):
        text = mutate(draw, text)
    return text


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory):
    """A products folder (with the demo transforms/) that each example overwrites."""
    return products_folder(tmp_path_factory.mktemp("fuzz"), [])


@settings(max_examples=200, deadline=None)
@given(text=mangled_specs())
def test_mangled_specs_fail_only_with_located_spec_errors(fuzz_folder, text):
    path = fuzz_folder / "product.yaml"
    path.write_text(text, encoding="utf-8")
    last_line = len(text.splitlines()) + 1  # YAML breaks lines at \r, \x85, \u2028 too
    try:
        load_product_file(path)
    except SpecError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.file == str(path)
            assert 1 <= issue.line <= last_line, str(issue)
            assert issue.column >= 1, str(issue)
            assert issue.message.strip(), str(issue)
    result = load_products(fuzz_folder)  # the folder loader must not raise either
    assert len(result.products) + len(result.errors) == 1


def outcome(path):
    """What loading ``path`` gives: ("spec", repr of the spec) or ("error", the message)."""
    try:
        return "spec", repr(load_product_file(path).spec)
    except SpecError as exc:
        return "error", str(exc)


@settings(max_examples=200, deadline=None)
@given(text=mangled_specs())
def test_plain_read_gives_load_markeds_data_or_nothing(text):
    """load_plain reads a document only when load_marked would read the same data without a
    duplicate key or an error (the loader's fast path rests on this)."""
    plain = load_plain(text)
    if plain is None:
        return
    document = load_marked(text)  # must not raise
    assert repr(document.data) == repr(plain)
    assert document.duplicate_keys == []


@settings(max_examples=200, deadline=None)
@given(text=mangled_specs())
def test_loading_without_marks_first_changes_nothing(fuzz_folder, text):
    """The same spec or the same located errors as reading every file with marks."""
    path = fuzz_folder / "product.yaml"
    path.write_text(text, encoding="utf-8")
    fast = outcome(path)
    with mock.patch("dag_factory.spec.loading.load_plain", return_value=None):
        careful = outcome(path)
    assert fast == careful


@pytest.mark.parametrize("text, plain", [
    ("a: 1\nb: [x, {c: 2013-01-01}]\n", True),
    ("<<: {a: 1}\nb: 2\n", True),
    ("a: 1\na: 2\n", False),  # duplicate key
    ("1: a\n'1': b\n", False),  # different keys for Python, the same text: reported as duplicate
    ("<<: {a: 1}\na: 2\n", False),  # duplicate once the merge key is flattened
    ("a: &x [1]\nb: *x\n", False),  # alias
    ("", False),
    ("a: 1\n---\nb: 2\n", False),  # two documents
    ("a: " + "[" * 70 + "]" * 70 + "\n", False),  # too deep
    ("a: " + "[" * 62 + "x" + "]" * 62 + "\n", True),  # x is the 64th node down: the limit
    ("a: " + "[" * 63 + "x" + "]" * 63 + "\n", False),  # x is the 65th (load_marked: fine)
    ("a: " + "[" * 100_000 + "\n", False),  # stops before libyaml's recursive composer dives
    ("q: 'select a & b'\n", False),  # a & might be an anchor: left to load_marked
    ("d: 2013-02-30\n", False),  # not a date
    ("a: b: c\n", False),  # syntax error
])
def test_plain_read_of_tricky_documents(text, plain):
    """load_plain declines what load_marked reports or needs marks for (aliases may expand)."""
    data = load_plain(text)
    assert (data is not None) is plain
    if plain:
        document = load_marked(text)
        assert document.data == data and document.duplicate_keys == []
