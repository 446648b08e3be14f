"""The YAML files rl-baselines3-zoo writes (``config.yml``, ``args.yml``), read and written safely.

The zoo dumps its hyperparameters as an ``OrderedDict`` with PyYAML's default dumper::

    !!python/object/apply:collections.OrderedDict
    - - - batch_size
        - 256

and reads them back with ``yaml.UnsafeLoader``, which would run any ``!!python/object``
a downloaded file carries. Here only two Python tags are understood, and only as data:
that ``OrderedDict`` (a list of ``[key, value]`` pairs becomes a dict) and ``!!python/tuple``
(becomes a list). Every other tag is refused by the safe loader underneath.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from rltool.errors import ConfigError

_ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"
_TUPLE_TAG = "tag:yaml.org,2002:python/tuple"


class _ZooLoader(yaml.SafeLoader):
    """The safe loader plus the zoo's OrderedDict and tuple tags, read as plain data."""


class _ZooDumper(yaml.SafeDumper):
    """The safe dumper plus the zoo's OrderedDict form, so rl_zoo3 reads what rltool writes."""


def _construct_ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, "OrderedDict: expected a list", node.start_mark)
    arguments = loader.construct_sequence(node, deep=True)
    pairs = arguments[0] if len(arguments) == 1 else None
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise yaml.constructor.ConstructorError(
            None, None, "OrderedDict: expected a list of [key, value] pairs", node.start_mark
        )
    return {str(key): value for key, value in pairs}


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    return list(loader.construct_sequence(node, deep=True))


def _represent_ordered_dict(dumper: yaml.SafeDumper, data: OrderedDict) -> yaml.Node:
    return dumper.represent_sequence(_ORDERED_DICT_TAG, [[[key, value] for key, value in data.items()]])


_ZooLoader.add_constructor(_ORDERED_DICT_TAG, _construct_ordered_dict)
_ZooLoader.add_constructor(_TUPLE_TAG, _construct_tuple)
_ZooDumper.add_representer(OrderedDict, _represent_ordered_dict)


def read_zoo_yaml(path: Path) -> Any:
    """Read a zoo ``config.yml``/``args.yml``/``env_kwargs.yml`` without running anything it carries.

    :param path: the file.
    :return: the data (mappings as dicts, tuples as lists).
    :raises ConfigError: the file is not YAML or carries a tag other than the zoo's two.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({error})") from None
    try:
        return yaml.load(text, Loader=_ZooLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: not a zoo YAML file rltool can read safely ({problem})") from None


def dump_zoo_yaml(mapping: dict[str, Any], *, ordered: bool = True) -> str:
    """:return: ``mapping`` as YAML in the zoo's form (an OrderedDict of sorted keys when ``ordered``)."""
    data = OrderedDict(sorted(mapping.items())) if ordered else mapping
    return yaml.dump(data, Dumper=_ZooDumper, default_flow_style=False)
