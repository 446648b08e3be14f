"""Torch activation names in configs (``nn.ReLU``) and the JAX functions the SBX backend uses for them.

A config written for SB3 names torch classes; SBX policies take plain JAX functions. The table
is known without importing JAX, so a config is validated before anything heavy is imported.
The functions are module-level (not lambdas or partials) so they behave like the names SBX
ships with.
"""

from __future__ import annotations

from typing import Any

# rltool's canonical torch name -> (module, attribute) of the JAX function with the same maths.
JAX_ACTIVATIONS: dict[str, tuple[str, str]] = {
    "nn.ReLU": ("flax.linen", "relu"),
    "nn.Tanh": ("flax.linen", "tanh"),
    "nn.ELU": ("flax.linen", "elu"),
    "nn.LeakyReLU": ("flax.linen", "leaky_relu"),
    "nn.GELU": (__name__, "exact_gelu"),
    "nn.SiLU": ("flax.linen", "silu"),
    "nn.Sigmoid": ("flax.linen", "sigmoid"),
    "nn.Softplus": ("flax.linen", "softplus"),
    "nn.SELU": ("flax.linen", "selu"),
    "nn.Mish": (__name__, "mish"),
}


def exact_gelu(x: Any) -> Any:
    """GELU with the exact erf form, as torch's ``nn.GELU()`` computes it (flax defaults to tanh's).

    :param x: input array.
    :return: ``x * Phi(x)``.
    """
    import jax

    return jax.nn.gelu(x, approximate=False)


def mish(x: Any) -> Any:
    """Mish, ``x * tanh(softplus(x))``, as torch's ``nn.Mish()``.

    :param x: input array.
    :return: the activation.
    """
    import jax
    import jax.numpy as jnp

    return x * jnp.tanh(jax.nn.softplus(x))


def jax_activation(name: str) -> Any:
    """Return the JAX function for a torch activation name.

    :param name: a key of :data:`JAX_ACTIVATIONS`, e.g. ``"nn.ReLU"``.
    :return: the function (imports flax).
    """
    import importlib

    module, attribute = JAX_ACTIVATIONS[name]
    return getattr(importlib.import_module(module), attribute)
