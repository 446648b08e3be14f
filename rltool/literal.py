"""A restricted parser for the Python-looking strings of rl-baselines3-zoo files.

rl-baselines3-zoo passes values such as ``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``
to ``eval()``, so a downloaded file can run code. Here the string is parsed with
:mod:`ast` and only literals, ``dict(...)`` with keywords, and names from an
allow-list are accepted. Names become :class:`Symbol` objects, resolved to the
real class only when a model is built (so parsing never imports torch).
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from typing import Any

from rltool.errors import ConfigError, did_you_mean

_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "SELU", "Mish")
_OPTIMIZERS = ("Adam", "AdamW", "RMSprop", "SGD", "Adagrad")

# Canonical name -> "module:attribute". Spellings found in zoo files map onto these.
SYMBOLS: dict[str, str] = {
    **{f"nn.{name}": f"torch.nn:{name}" for name in _ACTIVATIONS},
    **{f"optim.{name}": f"torch.optim:{name}" for name in _OPTIMIZERS},
    "RMSpropTFLike": "stable_baselines3.common.sb2_compat.rmsprop_tf_like:RMSpropTFLike",
    "NatureCNN": "stable_baselines3.common.torch_layers:NatureCNN",
    "FlattenExtractor": "stable_baselines3.common.torch_layers:FlattenExtractor",
    "CombinedExtractor": "stable_baselines3.common.torch_layers:CombinedExtractor",
    "ReplayBuffer": "stable_baselines3.common.buffers:ReplayBuffer",
    "DictReplayBuffer": "stable_baselines3.common.buffers:DictReplayBuffer",
    "HerReplayBuffer": "stable_baselines3.her.her_replay_buffer:HerReplayBuffer",
    "NormalActionNoise": "stable_baselines3.common.noise:NormalActionNoise",
    "OrnsteinUhlenbeckActionNoise": "stable_baselines3.common.noise:OrnsteinUhlenbeckActionNoise",
}
_PREFIXES = ("torch.", "th.", "torch.nn.modules.activation.", "nn.modules.activation.")


def _canonical(dotted: str) -> str | None:
    """Map any accepted spelling (``th.nn.ReLU``, ``torch.optim.Adam``, ...) to a key of SYMBOLS."""
    candidates = [dotted]
    for prefix in _PREFIXES:
        if dotted.startswith(prefix):
            candidates.append(dotted[len(prefix) :])
    for name in candidates:
        if name in SYMBOLS:
            return name
        if f"nn.{name}" in SYMBOLS:  # "nn.modules.activation.ReLU" -> "ReLU" -> "nn.ReLU"
            return f"nn.{name}"
        tail = name.rsplit(".", 1)[-1]
        if "." in name and tail in SYMBOLS:  # "stable_baselines3.common.sb2_compat....RMSpropTFLike"
            return tail
    return None


@dataclass(frozen=True)
class Symbol:
    """A reference to an allow-listed class, resolved lazily."""

    name: str

    def resolve(self) -> Any:
        """Import and return the object this symbol names.

        :return: the class (for example ``torch.nn.ReLU``).
        """
        module, attribute = SYMBOLS[self.name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def __repr__(self) -> str:
        return self.name


def symbol(dotted: str, *, where: str) -> Symbol:
    """Return the :class:`Symbol` for an allow-listed name or raise :class:`ConfigError`.

    :param dotted: a name such as ``nn.ReLU``.
    :param where: file and key, for the error message.
    :return: the symbol.
    """
    canonical = _canonical(dotted)
    if canonical is None:
        hint = did_you_mean(dotted, SYMBOLS) or f"; allowed names: {', '.join(sorted(SYMBOLS))}"
        raise ConfigError(f"{where}: name '{dotted}' is not allowed{hint}")
    return Symbol(canonical)


def _dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted_name(node.value)
        return f"{parent}.{node.attr}" if parent else None
    return None


def parse_literal(text: str, *, where: str) -> Any:
    """Parse a zoo-style Python literal string without evaluating code.

    Accepted: numbers, strings, booleans, None, lists, tuples, dicts with literal keys,
    ``dict(key=value, ...)`` and allow-listed names (see :data:`SYMBOLS`).

    :param text: the string from the config, e.g. ``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``.
    :param where: file and key, for error messages.
    :return: plain Python data with :class:`Symbol` objects for names.
    """
    try:
        tree = ast.parse(" ".join(text.split()), mode="eval")
    except SyntaxError as error:
        raise ConfigError(f"{where}: cannot parse {text!r} ({error.msg})") from None
    return _convert(tree.body, where)


def _convert(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _convert(node.operand, where)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List):
        return [_convert(item, where) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_convert(item, where) for item in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        keys = [_convert(key, where) for key in node.keys]
        if all(isinstance(key, (str, int)) for key in keys):
            return {key: _convert(value, where) for key, value in zip(keys, node.values, strict=True)}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(keyword.arg is not None for keyword in node.keywords)
    ):
        return {keyword.arg: _convert(keyword.value, where) for keyword in node.keywords}
    dotted = _dotted_name(node)
    if dotted is not None:
        return symbol(dotted, where=where)
    snippet = ast.unparse(node)
    raise ConfigError(
        f"{where}: '{snippet}' is not allowed here: only literals, dict(...) and names such as nn.ReLU are read"
    )


def contains_symbol(value: Any) -> bool:
    """:return: whether a parsed value holds a :class:`Symbol` anywhere."""
    if isinstance(value, Symbol):
        return True
    if isinstance(value, dict):
        return any(contains_symbol(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_symbol(item) for item in value)
    return False


def to_source(value: Any) -> str:
    """Write a parsed value back in the zoo's string form; ``parse_literal`` reads it back unchanged.

    :param value: plain data with :class:`Symbol` objects.
    :return: for example ``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``.
    """
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            return "dict(" + ", ".join(f"{key}={to_source(item)}" for key, item in value.items()) + ")"
        return "{" + ", ".join(f"{key!r}: {to_source(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_source(item) for item in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(to_source(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def resolve_symbols(value: Any) -> Any:
    """Replace every :class:`Symbol` in a parsed value by the object it names (imports here).

    :param value: plain data with symbols.
    :return: the same structure with real classes.
    """
    if isinstance(value, Symbol):
        return value.resolve()
    if isinstance(value, dict):
        return {key: resolve_symbols(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_symbols(item) for item in value]
    if isinstance(value, tuple):
        return tuple(resolve_symbols(item) for item in value)
    return value
