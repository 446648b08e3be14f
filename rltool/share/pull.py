"""Reading trained agents in the layouts of rl-baselines3-zoo and huggingface_sb3.

Three sources, one reader:

- a Hub repository in the zoo's layout (``{algo}-{env}.zip``, ``config.yml``, ``args.yml``,
  ``env_kwargs.yml``, ``vec_normalize.pkl``) or huggingface_sb3's (``{name}.zip``,
  ``config.json``, ``vec_normalize.pkl``, ``README.md`` whose metadata names the env);
- a local zoo run folder ``logs/<algo>/<env>_<N>/`` (``<env>.zip``, ``<env>/config.yml``,
  ``<env>/args.yml``, ``<env>/vecnormalize.pkl``).

YAML is read with :mod:`rltool.share.zoo_yaml` (no Python objects are built) and the model is
loaded later by rltool's safe loader, so nothing a downloaded file carries is run. ``rltool pull``
turns a repository into an rltool run folder (``models/hub/<org>/<name>/``) that ``eval``,
``record-video``, ``export`` and ``train --resume`` use like any other.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltool.errors import ConfigError, ModelLoadError, OutputError, RltoolError, first_line
from rltool.evaluate import ModelTarget

HF_PREFIX = "hf:/"
_NOT_MODELS = {"train_eval_metrics.zip"}
# keys of a zoo config.yml that describe the zoo's run, not the agent
_ZOO_RUN_KEYS = {"n_timesteps"}


@dataclass(frozen=True)
class AgentSource:
    """A trained agent found in a foreign layout.

    :param model_path: the SB3 zip.
    :param vecnormalize_path: its VecNormalize statistics, if any.
    :param hyperparams: the single-experiment mapping (env, algo, hyperparameters).
    :param origin: what to name in messages (repo id or folder).
    :param num_timesteps: steps the model was trained for (from its zip), if known.
    """

    model_path: Path
    vecnormalize_path: Path | None
    hyperparams: dict[str, Any]
    origin: str
    num_timesteps: int | None


def is_hf_target(target: Path | str) -> bool:
    """:return: True for ``hf://ORG/NAME`` (a Path turns the ``//`` into ``/``)."""
    return str(target).startswith(HF_PREFIX)


def hf_repo_id(target: Path | str) -> str:
    """:return: ``ORG/NAME`` of an ``hf://ORG/NAME`` target."""
    from rltool.share.hub import check_repo_id

    return check_repo_id(str(target)[len(HF_PREFIX) :].lstrip("/").rstrip("/"), what="hf://ORG/NAME")


def is_zoo_run(folder: Path) -> bool:
    """:return: True when ``folder`` looks like an rl-baselines3-zoo run (``<env>.zip`` + ``<env>/config.yml``)."""
    if not folder.is_dir():
        return False
    return any((folder / zip_path.stem / "config.yml").is_file() for zip_path in folder.glob("*.zip"))


def _model_zip(folder: Path, origin: str, preferred: list[str]) -> Path:
    zips = sorted(p for p in folder.glob("*.zip") if p.name not in _NOT_MODELS)
    for name in preferred:
        if (folder / name).is_file():
            return folder / name
    non_best = [p for p in zips if p.name != "best_model.zip"]
    if len(non_best) == 1:
        return non_best[0]
    if not zips:
        raise ModelLoadError(f"{origin}: holds no model .zip")
    if len(zips) == 1:
        return zips[0]
    names = ", ".join(p.name for p in zips)
    raise ModelLoadError(f"{origin}: several model zips ({names}); cannot tell which is the agent")


def _card_env_and_algo(readme: Path) -> tuple[str | None, str | None]:
    """:return: env id and algorithm class named by a model card's metadata (model-index), if any."""
    if not readme.is_file():
        return None, None
    try:
        from huggingface_hub import ModelCard

        card = ModelCard.load(readme, ignore_metadata_errors=True)
    except Exception:  # noqa: BLE001 - a card we cannot read names nothing
        return None, None
    for result in card.data.eval_results or []:
        return result.dataset_type or result.dataset_name, card.data.model_name
    return None, None


def _algo_from_class(class_name: str | None) -> str | None:
    from rltool.algos.registry import ALGOS

    for spec in ALGOS.values():
        if class_name and spec.class_name.lower() == class_name.lower():
            return spec.name
    return None


def _known_env(candidate: str) -> str | None:
    """:return: the registered gymnasium id a file-name env part stands for (``ALE-Pong-v5`` -> ``ALE/Pong-v5``)."""
    import gymnasium as gym

    for option in (candidate, candidate.replace("-", "/", 1)):
        if option in gym.registry:
            return option
    return None


def _split_model_name(stem: str) -> tuple[str | None, str | None]:
    """:return: (algo, env) of a ``{algo}-{env}`` file stem, each None when it is not one."""
    from rltool.algos.registry import ALGOS

    algo, _, env = stem.partition("-")
    if algo not in ALGOS or not env:
        return None, None
    return algo, _known_env(env)


def _zip_steps(model_path: Path) -> int | None:
    from rltool.safe_load import read_model_metadata

    try:
        return int(read_model_metadata(model_path)["data"]["num_timesteps"])
    except (RltoolError, KeyError, TypeError, ValueError):
        return None


def read_agent(folder: Path, *, origin: str, env: str | None = None, algo: str | None = None) -> AgentSource:
    """Find the model, statistics, env, algo and hyperparameters in a zoo or huggingface_sb3 folder.

    :param folder: a downloaded repository or a local zoo run folder.
    :param origin: what to name in messages.
    :param env: env id given by the user (wins over what the files say).
    :param algo: algorithm given by the user.
    :return: what was found.
    :raises ConfigError: the env or the algorithm cannot be told (one line asking for --env / --algo).
    """
    from rltool.share.zoo_yaml import read_zoo_yaml

    local_zoo = is_zoo_run(folder)
    if local_zoo:
        model_path = _model_zip(folder, origin, [])
        meta_folder = folder / model_path.stem
        vecnormalize = meta_folder / "vecnormalize.pkl"
    else:
        model_path = _model_zip(folder, origin, [])
        meta_folder = folder
        vecnormalize = folder / "vec_normalize.pkl"
    hyperparams: dict[str, Any] = {}
    args: dict[str, Any] = {}
    for name, into in (("config.yml", hyperparams), ("args.yml", args)):
        path = meta_folder / name
        if path.is_file():
            data = read_zoo_yaml(path)
            if data is not None and not isinstance(data, dict):
                raise ConfigError(f"{origin}: {name} is not a mapping")
            into.update(data or {})
    env_kwargs_path = meta_folder / "env_kwargs.yml"
    env_kwargs = read_zoo_yaml(env_kwargs_path) if env_kwargs_path.is_file() else None
    if env_kwargs is None:
        env_kwargs = args.get("env_kwargs")
    card_env, card_class = _card_env_and_algo(folder / "README.md")
    name_algo, name_env = _split_model_name(model_path.stem)
    if local_zoo:
        name_algo = name_algo or (folder.parent.name if _algo_from_name(folder.parent.name) else None)
        name_env = name_env or _known_env(model_path.stem)

    env_id = env or args.get("env") or card_env or name_env
    algo_name = algo or args.get("algo") or name_algo or _algo_from_class(card_class)
    if env_id is None:
        raise ConfigError(
            f"{origin}: does not say which env the agent plays; pass --env (e.g. --env CartPole-v1)"
        )
    if algo_name is None:
        raise ConfigError(
            f"{origin}: does not say which algorithm trained the agent; pass --algo (e.g. --algo ppo)"
        )

    steps = _zip_steps(model_path)
    mapping: dict[str, Any] = {"env": str(env_id), "algo": str(algo_name)}
    if args.get("seed") is not None:
        mapping["seed"] = args["seed"]
    mapping.update({k: v for k, v in hyperparams.items() if k not in _ZOO_RUN_KEYS})
    mapping["n_timesteps"] = max(1, steps or int(float(hyperparams.get("n_timesteps") or 1)))
    if env_kwargs and "env_kwargs" not in mapping:
        mapping["env_kwargs"] = env_kwargs
    has_statistics = vecnormalize.is_file()
    if has_statistics and not mapping.get("normalize"):
        mapping["normalize"] = True  # huggingface_sb3 saves the statistics without a config saying so
    if not has_statistics and mapping.get("normalize"):
        raise ModelLoadError(
            f"{origin}: the config normalizes observations but no VecNormalize statistics are there"
        )
    return AgentSource(model_path, vecnormalize if has_statistics else None, mapping, origin, steps)


def _algo_from_name(name: str) -> bool:
    from rltool.algos.registry import ALGOS

    return name in ALGOS


def source_config(source: AgentSource) -> Any:
    """:return: the validated :class:`~rltool.config.ExperimentConfig` of an agent source."""
    from rltool.config import config_from_mapping

    return config_from_mapping(source.hyperparams, source.origin)


def zoo_run_target(
    folder: Path, *, env: str | None = None, algo: str | None = None, model_path: Path | None = None
) -> ModelTarget:
    """:return: a :class:`ModelTarget` for a local rl-baselines3-zoo run folder (read in place, nothing written).

    :param folder: ``logs/<algo>/<env>_<N>/``.
    :param env: env id, when the folder does not say.
    :param algo: algorithm, when the folder does not say.
    :param model_path: a zip of the folder to use instead of ``<env>.zip`` (e.g. best_model.zip).
    """
    source = read_agent(folder, origin=str(folder), env=env, algo=algo)
    config = source_config(source)
    return ModelTarget(model_path or source.model_path, config, None, source.vecnormalize_path)


def pulled_run_dir(log_folder: Path, repo_id: str) -> Path:
    """:return: where ``rltool pull ORG/NAME`` puts the run: ``<log_folder>/hub/<org>/<name>``."""
    org, _, name = repo_id.partition("/")
    return log_folder / "hub" / org / name


def import_agent(source: AgentSource, run_dir: Path, *, repo: str | None = None) -> Path:
    """Write an rltool run folder (model.zip, vecnormalize.pkl, config.yaml, train.json) for ``source``.

    Built beside ``run_dir`` and renamed into place, so a failure leaves nothing behind.

    :param source: from :func:`read_agent`.
    :param run_dir: the run folder to create (must not exist).
    :param repo: the Hub repository it came from, recorded in train.json.
    :return: ``run_dir``.
    """
    from rltool.config import config_to_yaml
    from rltool.fileio import check_writable_folder, write_json, write_text

    config = source_config(source)
    check_writable_folder(run_dir.parent)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = run_dir.parent / f".{run_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        shutil.copyfile(source.model_path, staging / "model.zip")
        if source.vecnormalize_path is not None:
            shutil.copyfile(source.vecnormalize_path, staging / "vecnormalize.pkl")
        header = f"# Imported from {source.origin}; continue with: rltool train --resume {run_dir} -n MORE\n"
        write_text(staging / "config.yaml", config_to_yaml(config, header=header))
        write_json(
            staging / "train.json",
            {
                "algo": config.algo,
                "env": config.env,
                "seed": config.seed,
                "n_timesteps": config.n_timesteps,
                "num_timesteps": source.num_timesteps or 0,
                "n_envs": config.n_envs,
                "status": "finished",
                "imported_from": source.origin,
                "hub_repo": repo,
                "segments": [],
            },
        )
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def download(repo_id: str, revision: str | None = None) -> Path:
    """Download (or find in huggingface_hub's cache) every file of a Hub model repository.

    ``HF_HUB_OFFLINE=1`` uses only the cache. Errors become one line.

    :param repo_id: ``ORG/NAME``.
    :param revision: branch, tag or commit (default: main).
    :return: the snapshot folder in the cache.
    """
    import httpx2
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # agents are small; keep stderr for the one-line errors
    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision))
    except RepositoryNotFoundError:
        raise RltoolError(f"{repo_id}: no such model repository on the Hub (or it is private)") from None
    except RevisionNotFoundError:
        raise RltoolError(f"{repo_id}: no revision '{revision}'") from None
    except LocalEntryNotFoundError:
        raise RltoolError(
            f"{repo_id}: not in the local cache and the Hub cannot be reached (HF_HUB_OFFLINE or no network)"
        ) from None
    except HfHubHTTPError as error:
        raise RltoolError(f"{repo_id}: the Hub answered with an error ({first_line(error)})") from None
    except (httpx2.TransportError, OSError) as error:
        raise RltoolError(f"{repo_id}: cannot reach the Hub ({first_line(error)})") from None


def pull(
    repo_id: str,
    *,
    log_folder: Path = Path("models"),
    env: str | None = None,
    algo: str | None = None,
    revision: str | None = None,
    report: Any = print,
) -> Path:
    """Download a Hub repository and make it an rltool run folder under ``<log_folder>/hub/``.

    A repository already pulled is not downloaded or written again (its run folder may have
    been resumed since): its run folder is returned as it is.

    :param repo_id: ``ORG/NAME``.
    :param log_folder: the runs' folder (``models``).
    :param env: env id when the repository does not say.
    :param algo: algorithm when the repository does not say.
    :param revision: branch, tag or commit.
    :param report: where to print.
    :return: the run folder.
    """
    from rltool.share.hub import check_repo_id

    check_repo_id(repo_id, what=f"{repo_id}: not a local zoo run folder, and as a Hub repository")
    run_dir = pulled_run_dir(log_folder, repo_id)
    if run_dir.exists():
        if not (run_dir / "config.yaml").is_file():
            raise OutputError(f"{run_dir}: exists but is not a pulled run; move it away to pull {repo_id}")
        report(f"already pulled: {run_dir} (remove it to pull again)")
        return run_dir
    snapshot = download(repo_id, revision)
    source = read_agent(snapshot, origin=repo_id, env=env, algo=algo)
    import_agent(source, run_dir, repo=repo_id)
    report(f"pulled {repo_id} into {run_dir} ({source.hyperparams['algo']} on {source.hyperparams['env']})")
    return run_dir


def import_zoo_run(
    folder: Path,
    *,
    log_folder: Path = Path("models"),
    env: str | None = None,
    algo: str | None = None,
    report: Any = print,
) -> Path:
    """Copy a local rl-baselines3-zoo run into ``<log_folder>/zoo/<algo>/<run>/`` as an rltool run folder.

    :param folder: ``logs/<algo>/<env>_<N>/``.
    :param log_folder: the runs' folder.
    :param env: env id when the folder does not say.
    :param algo: algorithm when the folder does not say.
    :param report: where to print.
    :return: the new run folder.
    """
    source = read_agent(folder, origin=str(folder), env=env, algo=algo)
    run_dir = log_folder / "zoo" / str(source.hyperparams["algo"]) / folder.name
    if run_dir.exists():
        raise OutputError(f"{run_dir}: already exists (imported before?); remove it to import again")
    import_agent(source, run_dir)
    report(f"imported {folder} into {run_dir}")
    return run_dir
