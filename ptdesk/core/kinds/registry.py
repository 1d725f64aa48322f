"""The kinds registry: one entry per kind, read without importing the kind's module.

An entry says what `ptdesk new KIND --help`, `images build` and the dashboard's form show (name,
title, summary, which options it takes) and where the kind lives ("module:attribute"). The module
itself, with its keys, engine and HTTP code, is imported the first time the kind is used, so a
`--help` imports none of it. Entries and the kinds they load must agree (a test checks every one).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptdesk.core.kinds.base import Kind


@dataclass(frozen=True)
class KindEntry:
    """What is known of a kind before its module is imported."""

    name: str  # the CLI subcommand, the ptdesk.kind label, images/<name>/
    where: str  # "package.module:ATTRIBUTE", the Kind instance
    title: str  # how people call it: "SSH", "Jupyter"
    summary: str  # one line for `ptdesk new NAME --help` and the form
    accepts_pubkeys: bool = False  # `new --pubkey FILE`
    grants_logins: bool = False  # collaborators can be granted logins to it
    has_door: bool = True  # a service people reach (ssh, a URL); False: a batch job, made by `ptdesk run`
    own_image: bool = True  # built from images/<name>/ (`ptdesk images build NAME`)
    # Its image is built only by teams that use it (a large, slow build): `doctor` warns when it is
    # missing instead of failing, since nothing but this kind's own launches needs it.
    optional_image: bool = False

    def load(self) -> Kind:
        module, _, attribute = self.where.partition(":")
        return getattr(importlib.import_module(module), attribute)


class KindRegistry(MutableMapping[str, "Kind"]):
    """Kind name -> Kind, in the entries' order; a kind's module is imported on first lookup.

    Membership, iteration and `entry()` read the entries only. Setting a name registers a kind
    already made (tests register probe kinds that way)."""

    def __init__(self, *entries: KindEntry) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._loaded: dict[str, Kind] = {}

    def entry(self, name: str) -> KindEntry | None:
        return self._entries.get(name)

    def entries(self) -> tuple[KindEntry, ...]:
        return tuple(self._entries.values())

    def __getitem__(self, name: str) -> Kind:
        kind = self._loaded.get(name)
        if kind is None:
            kind = self._loaded[name] = self._entries[name].load()  # KeyError: no such kind
        return kind

    def __setitem__(self, name: str, kind: Kind) -> None:
        self._loaded[name] = kind

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._loaded.pop(name, None)
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._entries, *self._loaded]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._entries, *self._loaded]))
