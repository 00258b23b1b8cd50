"""Resource paths: ``parse_ref``/``parse_segments`` invert ``ResourcePath.ref``."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api.middleware import canonical_path
from controller.core.kinds import Kind
from controller.core.paths import CollectionPath, ResourcePath, parse_ref, parse_segments
from controller.resources import REGISTRY

PROBE = settings(deadline=None, max_examples=80)

resource_ids = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~ ()", min_size=1
).filter(lambda s: s == s.strip() and s not in (".", ".."))


def descendants(kind: Kind) -> list[list[Kind]]:
    """Every chain of kinds from ``kind`` down."""
    chains = [[kind]]
    for child in REGISTRY.children_of(kind):
        chains += [[kind, *rest] for rest in descendants(child)]
    return chains


CHAINS = [chain for top in REGISTRY.top_level for chain in descendants(top)]


@st.composite
def resource_paths(draw: st.DrawFn) -> ResourcePath:
    chain = draw(st.sampled_from(CHAINS))
    steps = tuple((kind, kind.singleton_id or draw(resource_ids)) for kind in chain)
    return ResourcePath(steps)


def recase(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=True))


def sloppy_ref(draw: st.DrawFn, path: ResourcePath) -> str:
    """``path.ref`` as clients write it: type segments (and singleton ids) in any case."""
    parts = []
    for kind, resource_id in path.steps:
        segment = draw(st.sampled_from((kind.name, *kind.uri_aliases)))
        parts += [
            recase(draw, segment),
            recase(draw, resource_id) if kind.singleton_id else resource_id,
        ]
    return "/" + "/".join(parts)


@PROBE
@given(resource_paths())
def test_parse_ref_inverts_ref(path: ResourcePath) -> None:
    assert parse_ref(REGISTRY, path.ref) == path


@PROBE
@given(resource_paths())
def test_parse_segments_inverts_ref(path: ResourcePath) -> None:
    assert parse_segments(REGISTRY, path.ref.strip("/").split("/")) == path


@PROBE
@given(resource_paths(), st.integers(min_value=1, max_value=5), st.data())
def test_parse_ref_accepts_version_prefix_casing_and_trailing_slash(
    path: ResourcePath, version: int, data: st.DataObject
) -> None:
    prefix = recase(data.draw, f"/networking/v{version}")
    text = prefix + sloppy_ref(data.draw, path) + data.draw(st.sampled_from(["", "/"]))
    parsed = parse_ref(REGISTRY, text)
    assert parsed == path
    assert parsed is not None
    assert parsed.ref == path.ref


@PROBE
@given(resource_paths())
def test_key_is_the_lower_cased_ref(path: ResourcePath) -> None:
    assert path.key == path.ref.lower()
    assert path.ref.startswith(f"/{path.steps[0][0].name}/")


@PROBE
@given(resource_paths())
def test_parent_and_root_are_prefixes(path: ResourcePath) -> None:
    assert path.root.ref == path.ref[: len(path.root.ref)]
    if path.parent is None:
        assert path.is_root
    else:
        assert path.ref.startswith(path.parent.ref + "/")
        assert path.parent.child(path.kind, path.resource_id) == path


@PROBE
@given(resource_paths())
def test_child_collections_parse_as_collections(path: ResourcePath) -> None:
    for child in REGISTRY.children_of(path.kind):
        segments = [*path.ref.strip("/").split("/"), child.name]
        assert parse_segments(REGISTRY, segments) == CollectionPath(child, path)
        assert parse_ref(REGISTRY, path.ref + "/" + child.name) is None


@PROBE
@given(resource_paths(), st.text(alphabet=string.ascii_letters, min_size=1, max_size=12))
def test_unknown_type_segments_are_not_references(path: ResourcePath, segment: str) -> None:
    known = {c.name.lower() for c in REGISTRY.children_of(path.kind)}
    known |= {a.lower() for c in REGISTRY.children_of(path.kind) for a in c.uri_aliases}
    if segment.lower() in known:
        return
    assert parse_ref(REGISTRY, f"{path.ref}/{segment}/x") is None


@PROBE
@given(resource_paths(), st.integers(min_value=1, max_value=5), st.booleans(), st.data())
def test_middleware_canonicalises_any_spelling_of_a_resource_uri(
    path: ResourcePath, version: int, trailing: bool, data: st.DataObject
) -> None:
    uri = recase(data.draw, f"/networking/v{version}") + sloppy_ref(data.draw, path)
    assert canonical_path(REGISTRY, uri + ("/" if trailing else "")) == (
        f"/networking/v{version}{path.ref}"
    )
