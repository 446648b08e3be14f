"""Packaging a run in the Hugging Face Hub layout of huggingface_sb3 / rl-baselines3-zoo, and pushing it.

A packaged folder holds::

    {algo}-{env}.zip      the SB3 model (env "/" written as "-")
    config.yml            hyperparameters, in the zoo's OrderedDict YAML form
    args.yml              algo, env and seed (the zoo writes its command-line arguments here)
    env_kwargs.yml        keyword arguments of the env
    vec_normalize.pkl     VecNormalize statistics, when the run normalizes
    results.json          a fresh deterministic evaluation
    replay.mp4            a replay of the agent (when the env renders rgb_array frames)
    README.md             a model card with model-index metadata (mean_reward "M +/- S")

Uploading uses huggingface_hub's client, whose token comes from its usual places
(``HF_TOKEN``, ``hf auth login``); rltool never reads, prints or writes the token.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltool.errors import EnvError, OutputError, RltoolError, first_line
from rltool.evaluate import ModelTarget
from rltool.type_aliases import Report

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_TAGS = ("deep-reinforcement-learning", "reinforcement-learning", "stable-baselines3", "rltool")


class HubError(RltoolError):
    """The Hub (or the local server standing in for it) refused or could not be reached."""


def check_repo_id(repo_id: str, what: str = "--repo-id") -> str:
    """:return: ``repo_id`` when it has the form ``ORG/NAME``; else raise a one-line error naming ``what``."""
    if not REPO_ID_PATTERN.match(repo_id) or ".." in repo_id:
        raise RltoolError(f"{what}: expected ORG/NAME (letters, digits, '.', '_', '-'), got '{repo_id}'")
    return repo_id


def env_file_name(env_id: str) -> str:
    """:return: the env id as huggingface_sb3 writes it in file names ("ALE/Pong-v5" -> "ALE-Pong-v5")."""
    return env_id.replace("/", "-")


def model_file_name(algo: str, env_id: str) -> str:
    """:return: the zip name of the Hub layout, ``{algo}-{env}.zip``."""
    return f"{algo}-{env_file_name(env_id)}.zip"


@dataclass(frozen=True)
class PackageOptions:
    """What goes into a packaged folder.

    :param repo_id: ``ORG/NAME`` the card's usage commands name (None: a placeholder).
    :param eval_episodes: deterministic episodes of the fresh evaluation.
    :param video_length: env steps of replay.mp4 (0: no video).
    :param trust_pickles: allow model/statistics files that need unpickling.
    :param allowed_modules: module prefixes allowed for wrappers.
    """

    repo_id: str | None = None
    eval_episodes: int = 10
    video_length: int = 1000
    trust_pickles: bool = False
    allowed_modules: tuple[str, ...] = ()


def _hyperparameters(target: ModelTarget) -> dict[str, Any]:
    """:return: the run's hyperparameters in the zoo's form (no env, algo or seed: args.yml holds those)."""
    from rltool.config import config_to_dict

    data = config_to_dict(target.config)
    for key in ("env", "algo", "seed"):
        data.pop(key, None)
    return data


def _model_card(target: ModelTarget, repo_id: str, results: dict[str, Any], hyperparams_yaml: str) -> Any:
    """:return: a ``huggingface_hub.ModelCard`` with model-index metadata, usage and hyperparameters."""
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard import metadata_eval_result

    from rltool.algos.registry import ALGOS

    config = target.config
    algo_class = ALGOS[config.algo].class_name
    metric = f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
    evaluation = metadata_eval_result(
        model_pretty_name=algo_class,
        task_pretty_name="reinforcement-learning",
        task_id="reinforcement-learning",
        metrics_pretty_name="mean_reward",
        metrics_id="mean_reward",
        metrics_value=metric,
        dataset_pretty_name=config.env,
        dataset_id=config.env,
    )
    data = ModelCardData(library_name="stable-baselines3", tags=[config.env, *HUB_TAGS], **evaluation)
    org, _, name = repo_id.partition("/")
    mode = "deterministic" if results["is_deterministic"] else "stochastic"
    env_kwargs = ""
    if config.env_kwargs:
        env_kwargs = (
            f"\n## Environment arguments\n\n```yaml\n{json.dumps(config.env_kwargs, indent=2)}\n```\n"
        )
    text = f"""---
{data.to_yaml()}
---

# {algo_class} agent playing {config.env}

A {algo_class} agent trained on **{config.env}** with
[rltool](https://pypi.org/project/rltool/) over Stable-Baselines3.

Mean reward **{metric}** over {results["n_eval_episodes"]} {mode} episodes
(evaluated on {results["eval_datetime"][:10]}; `results.json` has every episode).

## Usage (rltool)

The model loads without running pickled code (rltool's safe loader):

```bash
rltool pull {repo_id}
rltool eval hf://{repo_id}
rltool record-video models/hub/{org}/{name}
rltool train --resume models/hub/{org}/{name} -n 200000
```

## Usage (RL Zoo)

```bash
python -m rl_zoo3.load_from_hub --algo {config.algo} --env {config.env} -orga {org} -f logs/
python -m rl_zoo3.enjoy --algo {config.algo} --env {config.env} -f logs/
```

## Hyperparameters

```yaml
{hyperparams_yaml.rstrip()}
```
{env_kwargs}"""
    return ModelCard(text)


def _evaluate(target: ModelTarget, options: PackageOptions) -> dict[str, Any]:
    from rltool.evaluate import evaluate

    result = evaluate(
        target,
        episodes=options.eval_episodes,
        deterministic=True,
        trust_pickles=options.trust_pickles,
        allowed_modules=options.allowed_modules,
    )
    return {
        "mean_reward": result.mean_reward,
        "std_reward": result.std_reward,
        "is_deterministic": True,
        "n_eval_episodes": options.eval_episodes,
        "eval_datetime": datetime.datetime.now().isoformat(),
        "episode_rewards": result.episode_rewards,
        "episode_lengths": result.episode_lengths,
    }


def _check_output(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise OutputError(f"{output}: already exists and is not empty; choose another -o or remove it")


def package_run(target: ModelTarget, output: Path, options: PackageOptions, report: Report = print) -> Path:
    """Write the Hub folder of a trained run (see the module docstring) to ``output``.

    The folder is built beside ``output`` and renamed into place at the end, so a failure
    leaves nothing half-made; an existing non-empty ``output`` is never touched.

    :param target: from :func:`rltool.evaluate.resolve_target`.
    :param output: the folder to create (absent or empty).
    :param options: see :class:`PackageOptions`.
    :param report: where to print progress lines.
    :return: ``output``.
    """
    import yaml

    from rltool.fileio import check_writable_folder, write_json, write_text
    from rltool.share.zoo_yaml import dump_zoo_yaml

    _check_output(output)
    check_writable_folder(output.parent)
    config = target.config
    repo_id = options.repo_id or f"ORG/{config.algo}-{env_file_name(config.env)}"
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(target.model_path, staging / model_file_name(config.algo, config.env))
        hyperparams_yaml = dump_zoo_yaml(_hyperparameters(target))
        write_text(staging / "config.yml", hyperparams_yaml)
        write_text(
            staging / "args.yml", dump_zoo_yaml({"algo": config.algo, "env": config.env, "seed": config.seed})
        )
        write_text(staging / "env_kwargs.yml", yaml.safe_dump(dict(config.env_kwargs)))
        if target.vecnormalize_path is not None:
            shutil.copyfile(target.vecnormalize_path, staging / "vec_normalize.pkl")
        report(f"evaluating {options.eval_episodes} deterministic episodes")
        results = _evaluate(target, options)
        write_json(staging / "results.json", results)
        if options.video_length > 0:
            _record_replay(target, staging / "replay.mp4", options, report)
        plain_yaml = yaml.safe_dump(_hyperparameters(target), sort_keys=True, default_flow_style=False)
        card = _model_card(target, repo_id, results, plain_yaml)
        write_text(staging / "README.md", str(card))
        if output.exists():
            output.rmdir()  # empty, checked above
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report(f"mean_reward={results['mean_reward']:.2f} +/- {results['std_reward']:.2f}")
    return output


def _record_replay(target: ModelTarget, path: Path, options: PackageOptions, report: Report) -> None:
    from rltool.video import record_video

    report(f"recording replay.mp4 ({options.video_length} steps)")
    try:
        record_video(
            target,
            length=options.video_length,
            output=path,
            trust_pickles=options.trust_pickles,
            allowed_modules=options.allowed_modules,
        )
    except EnvError as error:  # an env without rgb_array frames still gets a model card
        report(f"no replay.mp4: {error}")


def push_folder(
    folder: Path, repo_id: str, *, private: bool = False, commit_message: str | None = None
) -> str:
    """Create ``repo_id`` on the Hub (if needed) and upload ``folder`` to it in one commit.

    :param folder: a folder written by :func:`package_run`.
    :param repo_id: ``ORG/NAME``.
    :param private: create the repo private.
    :param commit_message: the commit message.
    :return: the repo's URL.
    """
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        url = api.create_repo(repo_id, exist_ok=True, private=private)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or "Upload agent packaged by rltool",
        )
    except HfHubHTTPError as error:
        raise HubError(f"{repo_id}: the Hub refused the upload ({_http_summary(error)})") from None
    except (httpx2.TransportError, OSError) as error:  # connection refused, DNS, timeout
        raise HubError(
            f"{repo_id}: cannot reach the Hub ({type(error).__name__}: {first_line(error)})"
        ) from None
    return str(url)


def _http_summary(error: Any) -> str:
    """:return: the status and first line of an HTTP error, nothing from the request's headers."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return f"HTTP {status}: {first_line(error)}" if status else first_line(error)
