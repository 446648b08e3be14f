"""Config loading: single-experiment files, rl-baselines3-zoo files, safe parsing, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltool.config import config_to_yaml, load_config, parse_override
from rltool.errors import ConfigError, EnvError
from rltool.literal import Symbol, parse_literal, to_source

ZOO = Path(__file__).parent / "data" / "zoo"
CONFIGS = Path(__file__).parent.parent / "configs"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_single_experiment_file_reads_every_kind_of_value(tmp_path):
    path = write(
        tmp_path,
        """
env: CartPole-v1
algo: ppo
seed: 3
n_timesteps: !!float 1e4
n_envs: 4
policy: MlpPolicy
learning_rate: lin_0.001
clip_range: 0.2
normalize: true
policy_kwargs: "dict(net_arch=[dict(pi=[32], vf=[32])], activation_fn=nn.Tanh)"
""",
    )
    config = load_config(path)
    assert (config.env, config.algo, config.seed, config.n_timesteps, config.n_envs) == (
        "CartPole-v1",
        "ppo",
        3,
        10_000,
        4,
    )
    assert isinstance(config.n_timesteps, int)
    assert config.algo_kwargs["learning_rate"] == "lin_0.001"
    assert config.algo_kwargs["policy_kwargs"] == {
        "net_arch": [{"pi": [32], "vf": [32]}],
        "activation_fn": Symbol("nn.Tanh"),
    }
    assert config.normalize_kwargs == {}


def test_zoo_file_sections_and_fallbacks():
    cartpole = load_config(ZOO / "ppo.yml", env="CartPole-v1")
    assert cartpole.algo == "ppo"  # from the file name
    assert cartpole.n_envs == 4 and cartpole.n_timesteps == 20_000  # YAML merge key
    assert cartpole.algo_kwargs["policy_kwargs"] == {"net_arch": [64, 64], "activation_fn": Symbol("nn.ReLU")}

    pendulum = load_config(ZOO / "ppo.yml", env="Pendulum-v1")
    assert pendulum.normalize == {"norm_obs": True, "norm_reward": False}
    kwargs = pendulum.algo_kwargs["policy_kwargs"]
    assert kwargs["activation_fn"] == Symbol("nn.Tanh")
    assert kwargs["optimizer_class"] == Symbol("optim.RMSprop")
    assert kwargs["log_std_init"] == -2 and kwargs["ortho_init"] is False

    mountain = load_config(ZOO / "ppo.yml", env="MountainCarContinuous-v0")
    assert mountain.normalize == {"norm_obs": True, "norm_reward": False}
    assert mountain.env_wrapper[0].path == "gymnasium.wrappers.TimeLimit"
    assert mountain.env_wrapper[0].kwargs == {"max_episode_steps": 100}

    fallback = load_config(ZOO / "ppo.yml", env="Acrobot-v1")  # no section: "default"
    assert fallback.n_timesteps == 10_000


def test_zoo_off_policy_keys():
    config = load_config(ZOO / "sac.yml", env="Pendulum-v1")
    assert config.algo == "sac"
    assert config.algo_kwargs["train_freq"] == (1, "episode")
    assert config.algo_kwargs["replay_buffer_kwargs"] == {"handle_timeout_termination": True}
    assert config.algo_kwargs["ent_coef"] == "auto"
    assert (config.noise_type, config.noise_std) == ("normal", 0.1)


def test_resolved_symbols_are_real_classes():
    import torch

    from rltool.algos import model_kwargs

    kwargs = model_kwargs(load_config(ZOO / "ppo.yml", env="Pendulum-v1"))
    assert kwargs["policy_kwargs"]["activation_fn"] is torch.nn.Tanh
    assert kwargs["policy_kwargs"]["optimizer_class"] is torch.optim.RMSprop


def test_schedules_become_linear_schedules():
    from rltool.algos import model_kwargs
    from rltool.schedules import LinearSchedule

    kwargs = model_kwargs(load_config(ZOO / "ppo.yml", env="CartPole-v1"))
    assert kwargs["learning_rate"] == LinearSchedule(0.001)
    assert kwargs["learning_rate"](0.5) == pytest.approx(0.0005)


def test_saved_config_reads_back_identically(tmp_path):
    original = load_config(ZOO / "ppo.yml", env="Pendulum-v1", overrides=["gamma=0.95"])
    saved = write(tmp_path, config_to_yaml(original), "config.yaml")
    again = load_config(saved)
    for field in (
        "env",
        "algo",
        "n_timesteps",
        "n_envs",
        "policy",
        "normalize",
        "algo_kwargs",
        "env_wrapper",
    ):
        assert getattr(again, field) == getattr(original, field), field


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("learning_rate=1e-3", "learning_rate", 0.001),
        ("n_steps=128", "n_steps", 128),
        ("learning_rate=lin_3e-4", "learning_rate", "lin_3e-4"),
        ("policy_kwargs=dict(net_arch=[16])", "policy_kwargs", {"net_arch": [16]}),
        ("normalize_advantage=false", "normalize_advantage", False),
    ],
)
def test_command_line_overrides(override, key, value):
    config = load_config(CONFIGS / "cartpole.yaml", overrides=[override])
    assert config.algo_kwargs[key] == value


def test_override_flags_for_budget_seed_and_envs():
    config = load_config(CONFIGS / "cartpole.yaml", n_timesteps=123, seed=7, n_envs=2)
    assert (config.n_timesteps, config.seed, config.n_envs) == (123, 7, 2)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch MARKER')",
        "dict(a=__import__('os').system('touch MARKER'))",
        "dict(a=open('MARKER', 'w'))",
        "[x for x in ().__class__.__base__.__subclasses__()]",
        "lambda: 0",
        "dict(**{'a': 1})",
        "os.system",
    ],
)
def test_code_strings_are_refused(text):
    with pytest.raises(ConfigError, match="not allowed"):
        parse_literal(text, where="f.yaml: policy_kwargs")


@pytest.mark.parametrize("key", ["policy_kwargs", "normalize", "replay_buffer_kwargs"])
def test_code_in_config_values_is_refused_and_nothing_runs(tmp_path, key, monkeypatch):
    monkeypatch.chdir(tmp_path)
    algo = "dqn" if key == "replay_buffer_kwargs" else "ppo"
    path = write(
        tmp_path,
        f"env: CartPole-v1\nalgo: {algo}\nn_timesteps: 100\n{key}: \"__import__('os').system('touch MARKER')\"\n",
    )
    with pytest.raises(ConfigError, match=key):
        load_config(path)
    with pytest.raises(ConfigError):
        load_config(
            CONFIGS / "cartpole.yaml", overrides=["policy_kwargs=__import__('os').system('touch MARKER')"]
        )
    assert not (tmp_path / "MARKER").exists()


def test_python_tags_in_yaml_are_refused(tmp_path):
    path = write(
        tmp_path, "env: CartPole-v1\nalgo: ppo\nn_timesteps: !!python/object/apply:os.system ['true']\n"
    )
    with pytest.raises(ConfigError, match="YAML"):
        load_config(path)


def test_to_source_round_trip():
    value = parse_literal("dict(a=[1, -2.5], b=nn.ReLU, c={'x': (1, 2)}, d=None)", where="x")
    assert parse_literal(to_source(value), where="x") == value


@pytest.mark.parametrize(
    "text, flags, expected",
    [
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\nn_step: 8\n",
            {},
            r"c\.yaml:4: n_step: unknown key for ppo; did you mean 'n_steps'\?",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\ngamma: high\n",
            {},
            r"c\.yaml:4: gamma: expected a number",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\nn_steps: 1.5\n",
            {},
            r"n_steps: expected an integer",
        ),
        ("env: CartPole-v1\nalgo: ppo\nn_timesteps: 0\n", {}, r"n_timesteps: must be >= 1"),
        ("env: CartPole-v1\nalgo: ppo\nn_timesteps: 10\nn_envs: -1\n", {}, r"n_envs: must be >= 1"),
        (
            "env: CartPole-v1\nalgo: ppx\nn_timesteps: 100\n",
            {},
            r"unknown algorithm 'ppx'; did you mean 'ppo'\?",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\npolicy: MlpPolicyy\n",
            {},
            r"unknown policy 'MlpPolicyy'",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\nlearning_rate: fast\n",
            {},
            r"schedule such as 'lin_0.001'",
        ),
        ("env: CartPole-v1\nalgo: ppo: x\nn_timesteps: 100\n", {}, r"c\.yaml:2:\d+: YAML syntax error"),
        ("", {}, r"the file is empty"),
        ("- env: CartPole-v1\n", {}, r"the top level is a list"),
        ("env: CartPole-v1\nn_timesteps: 100\n", {}, r"missing key 'algo'"),
        ("env: CartPole-v1\nalgo: ppo\n", {}, r"missing key 'n_timesteps'"),
        (
            'env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\nnormalize: "dict(norm_obz=True)"\n',
            {},
            r"did you mean 'norm_obs'",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\nnoise_type: normal\n",
            {},
            r"ppo takes no action noise",
        ),
        ("CartPole-v1:\n  n_timesteps: 100\n", {}, r"pass --env"),
        (
            "CartPole-v1:\n  n_timesteps: 100\n",
            {"env": "Pendulum-v1", "algo": "ppo"},
            r"no hyperparameters for env 'Pendulum-v1'",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\n",
            {"overrides": ["gama=0.9"]},
            r"-p gama: unknown key for ppo; did you mean 'gamma'",
        ),
        (
            "env: CartPole-v1\nalgo: ppo\nn_timesteps: 100\n",
            {"overrides": ["novalue"]},
            r"expected key=value",
        ),
    ],
)
def test_bad_config_values_name_file_key_and_fix(tmp_path, text, flags, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as error:
        load_config(path, **flags)
    assert "\n" not in str(error.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="no such file"):
        load_config("does/not/exist.yaml")


@pytest.mark.parametrize(
    "env, expected",
    [
        ("LunarLander-v2", r"'LunarLander-v2' is not available.*use 'LunarLander-v3'"),
        ("CartPol-v1", r"unknown env id 'CartPol-v1'; did you mean 'CartPole-v1'\?"),
        ("no_such_module_xyz:Env", r"cannot import module 'no_such_module_xyz'"),
    ],
)
def test_unknown_or_deprecated_env(tmp_path, env, expected):
    path = write(tmp_path, f"env: '{env}'\nalgo: ppo\nn_timesteps: 100\n")
    with pytest.raises(EnvError, match=expected):
        load_config(path)


def test_every_shipped_config_loads_and_builds():
    from rltool.algos import build_model
    from rltool.envs.builder import EnvOptions, build_vec_env

    paths = sorted(CONFIGS.glob("*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        config = load_config(path)
        env = build_vec_env(config, EnvOptions(n_envs=1))
        try:
            model = build_model(config, env)
            assert model.observation_space == env.observation_space
        finally:
            env.close()


def test_parse_override_reads_numbers_like_a_user_means():
    assert parse_override("learning_rate=1e-3") == ("learning_rate", 0.001)
    assert parse_override("net=[64, 64]") == ("net", [64, 64])
    assert parse_override("flag=true") == ("flag", True)
