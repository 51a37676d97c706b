"""``vidtok-bench run -m KEY=a,b ...``: sweeps through Hydra's own multirun machinery.

Hydra expands the sweep and hands each job to the chosen launcher: the basic one (in this process,
one job after another), ``hydra/launcher=submitit_local`` (local subprocesses) or
``hydra/launcher=submitit_slurm`` (Slurm jobs; ``pip install "vidtok-bench[slurm]"``). Each job is
an ordinary run in its own output directory, ``SWEEP/KEY=VALUE,...`` named by the job's overrides
(``SWEEP``: ``output_dir``, default ``outputs/sweep``), so rerunning the same sweep resumes every job
where it stopped, and ``vidtok-bench table SWEEP`` collects the results. ``shard`` is left out of the
directory name: the shards of one job share it (``SWEEP/KEY=VALUE,.../shard-I-of-N``), ready for
``vidtok-bench merge``.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from .config import RUNTIME_OVERRIDE_KEYS

DEFAULT_SWEEP_DIR = "outputs/sweep"
#: one JSON line per job that ended (its overrides and exit status) in the sweep directory: the launchers keep the
#: jobs' return values to themselves (submitit's in other processes), and the sweep exits with the worst of them
STATUS_FILE = ".job_status.jsonl"
#: keys that do not change what a job computes, or that split one job (shard): not in its directory name, unless the
#: sweep varies them (see dirname_excludes)
EXCLUDED_FROM_DIRNAME = RUNTIME_OVERRIDE_KEYS


#: bytes of a job directory name kept readable; longer ones (a long dataset.root) end in a hash of the whole name
MAX_DIRNAME_BYTES = 200


def _dirname(override_dirname: str) -> str:
    """A job directory name from Hydra's ``override_dirname``: one path component, under the file systems'
    255-byte limit (a longer one keeps its first part and a hash of the whole, so it is still one per job)."""
    name = re.sub(r"(^|,)[+~]+", r"\1", override_dirname).replace("/", "_") or "default"
    raw = name.encode("utf-8")
    if len(raw) <= MAX_DIRNAME_BYTES:
        return name
    head = raw[:MAX_DIRNAME_BYTES - 13].decode("utf-8", errors="ignore")
    return f"{head}-{hashlib.sha256(raw).hexdigest()[:12]}"


def _register_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("vidtok_bench_dirname"):
        OmegaConf.register_new_resolver("vidtok_bench_dirname", _dirname)


# the launcher composes each job's config again where the job runs (a Slurm node, a subprocess), after
# unpickling `job` and so importing this module: the resolver and plugin configs must exist there too
_register_resolver()


def _store_configs() -> None:
    from .config import _store_plugin_configs

    _store_plugin_configs()


_store_configs()


def job(cfg: Any) -> int:
    """One sweep job: the composed config as an ordinary run in the job's own directory. Its exit status (a run's,
    returned) goes to the sweep's STATUS_FILE; an error (a full disk too) is its one line, not an exception Hydra
    reports with a traceback."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from .config import check_top_level, name_groups, plan_run
    from .errors import BenchError
    from .run_cli import EXIT_CONFIG, run_here
    from .runner import Runner

    hc = HydraConfig.get()
    out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(out, dict)
    check_top_level(out)
    name_groups(out, dict(hc.runtime.choices))
    out["output_dir"] = hc.runtime.output_dir
    try:
        status = run_here(Runner(plan_run(out)))
    except BenchError as exc:
        print(f"vidtok-bench: error: {exc}", file=sys.stderr)
        status = EXIT_CONFIG
    _note_status(Path(hc.sweep.dir), list(hc.overrides.task), status)
    return status


def _note_status(sweep_dir: Path, overrides: list[str], status: int) -> None:
    line = json.dumps({"job": " ".join(overrides), "status": status}) + "\n"
    with open(sweep_dir / STATUS_FILE, "a") as fh:  # one small append per job: whole lines, also from other processes
        fh.write(line)


def sweep_status(sweep_dir: Path, expected: int | None = None, why: str = "") -> int:
    """The sweep's exit status: 0 when every job ended 0, else the worst job's (an error, then a job that did not
    finish, then nothing evaluated, then partial), with one line naming the jobs that did not end 0 and one for
    those of the ``expected`` that never reported (killed: ``why``, the launcher's word)."""
    from .errors import EXIT_TERMINATED
    from .run_cli import EXIT_CONFIG, EXIT_EMPTY, EXIT_IO, EXIT_PARTIAL

    try:
        jobs = [json.loads(x) for x in (sweep_dir / STATUS_FILE).read_text().splitlines() if x.strip()]
    except (OSError, ValueError):
        jobs = []
    bad = [j for j in jobs if j.get("status")]
    codes = {j["status"] for j in bad}
    if bad:
        named = "; ".join(f"{j['job']} (exit {j['status']})" for j in bad[:5]) + (f"; … and {len(bad) - 5} more" if len(bad) > 5 else "")
        print(f"vidtok-bench: {len(bad)} of {len(jobs)} sweep job(s) did not end cleanly: {named}", file=sys.stderr)
    if expected is not None and len(jobs) < expected:
        codes.add(EXIT_TERMINATED)
        print(f"vidtok-bench: {expected - len(jobs)} of {expected} sweep job(s) did not finish{_unfinished(sweep_dir)} "
              f"({why or 'no status'}); their finished videos are kept — rerun the same sweep to resume them",
              file=sys.stderr)
    if not codes:
        return 0
    return next((c for c in (EXIT_IO, EXIT_CONFIG, EXIT_TERMINATED, EXIT_EMPTY, EXIT_PARTIAL) if c in codes), max(codes))


def _unfinished(sweep_dir: Path) -> str:
    """``", e.g. DIR"``: a job directory with a run begun and not finished, if there is one."""
    from .results import PER_CLIP_FILE, RESULTS_FILE

    begun = sorted(p.parent for p in sweep_dir.rglob(PER_CLIP_FILE) if not (p.parent / RESULTS_FILE).exists())
    return f", e.g. {begun[0]}" if begun else ""


def _launch(task: Any) -> str:
    """Run the sweep's jobs: "" when the launcher returned every job, else its one-line reason why some did not
    (submitit's: a job killed by the OOM killer, a time limit or a lost node). Other errors keep their traceback."""
    import os

    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # the launcher's exception comes here, not as Hydra's printed traceback
    try:
        task()
    except Exception as exc:
        if not type(exc).__module__.startswith("submitit"):
            raise
        return f"{type(exc).__name__}: {' '.join(str(exc).splitlines()[:2]).strip()}"
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before
    return ""


def job_overrides(overrides: list[str]) -> list[list[str]]:
    """Each job's overrides, expanded from sweep syntax (``k=a,b``, ``range()``, ``choice()``) by Hydra's own
    override parser, in the basic sweeper's order (the cartesian product); Hydra's settings left out."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from .errors import ConfigError

    user = [o for o in overrides if not _is_hydra(o)]
    try:
        parsed = OverridesParser.create().parse_overrides(user)
        axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
                else [o.input_line] for o in parsed]
    except HydraException as exc:  # also glob(), which needs Hydra's config loader: list the values instead
        raise ConfigError(f"invalid sweep: {str(exc).strip().splitlines()[0]}") from None
    return [list(job) for job in itertools.product(*axes)]


def check_jobs(overrides: list[str], sweep_dir: Path) -> int:
    """Compose and validate every job before the launcher starts any (a bad value in the last job must not
    surface after the first ones ran, or as Hydra's multi-line job failure), and make ``sweep_dir``; returns
    the number of jobs."""
    from .config import compose
    from .errors import BenchError, ConfigError
    from .runner import Runner

    jobs = job_overrides(overrides)
    # Slurm jobs run on other machines: a GPU job submitted from a login node without one is checked here with
    # device=cpu (everything else is the same), and its device where it runs
    elsewhere = ["device=cpu"] if any(o.startswith("hydra/launcher=submitit_slurm") for o in overrides) else []
    for ovs in jobs:
        try:  # a run's own checks, the plugins' included (tokenizer.h=abc, dataset.size=250); nothing loaded or read
            Runner(compose([*ovs, *elsewhere]))
        except BenchError as exc:
            sweep_keys = [o for o in ovs if o not in overrides]
            raise ConfigError(f"sweep job {' '.join(sweep_keys) or '(every job)'}: {exc}") from None
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output_dir={sweep_dir}: cannot write there ({exc.strerror or exc})") from None
    return len(jobs)


def sweep_settings(base: str, user: list[str]) -> list[str]:
    """Hydra's settings for every sweep: the jobs' directories below ``base``, one job name, logs to stdout."""
    settings = [
        f"hydra.sweep.dir={base}",
        "hydra.sweep.subdir='${vidtok_bench_dirname:${hydra.job.override_dirname}}'",
        f"hydra.job.config.override_dirname.exclude_keys=[{','.join(dirname_excludes(user))}]",
        "hydra.job.chdir=false",
        "hydra.job.name=vidtok-bench",  # the Slurm job name (else this module's name)
        # no .hydra/ files per job: the shards of one job share its directory
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
        "hydra/hydra_logging=none",
    ]
    if any(o.startswith("hydra/launcher=submitit") for o in user):
        # one folder for all jobs' submitit files, not the default .submitit/%j: submitit's local controller
        # opens its logs in the %j folder before the submitting process has created it (a race lost under load)
        settings.append("hydra.launcher.submitit_folder=${hydra.sweep.dir}/.submitit")
    return settings


def dirname_excludes(user: list[str]) -> list[str]:
    """The keys left out of job directory names: EXCLUDED_FROM_DIRNAME, except those this sweep gives several values
    (``workers=1,2,4`` measures speed: one directory per value, or every job after the first would find the first's
    result); ``shard`` always, since the shards of one job share its directory."""
    values: dict[str, set[str]] = {}
    for ovs in job_overrides(user):
        for o in ovs:
            key, _, value = o.lstrip("+~").partition("=")
            values.setdefault(key, set()).add(value)
    return [k for k in EXCLUDED_FROM_DIRNAME if k == "shard" or len(values.get(k, ())) < 2]


def _is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra")


def _compose_with_hydra(overrides: list[str]) -> Any:
    """conf/config.yaml with its ``hydra`` node, as Hydra composes it for a job (HydraException on a bad override)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="vidtok_bench.conf", version_base="1.3"):
            return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def launcher_settings(user: list[str], settings: list[str]) -> tuple[str, dict[str, Any]]:
    """The sweep's launcher and its settings (``hydra.launcher``), composed as Hydra composes them for the jobs;
    an unknown launcher or launcher setting is a one-line ConfigError naming it, before any job runs."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from .errors import ConfigError

    hydra_overrides = [o for o in user if _is_hydra(o)]
    try:
        cfg = _compose_with_hydra([*settings, *hydra_overrides])
        launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""  # why Hydra could not merge a value
        raise ConfigError(_hydra_setting_error(str(exc) + cause, settings, hydra_overrides)) from None
    assert isinstance(launcher, dict)
    return str(cfg.hydra.runtime.choices["hydra/launcher"]), launcher


def _hydra_setting_error(text: str, settings: list[str], hydra_overrides: list[str]) -> str:
    """Hydra's multi-line refusal of a launcher or a ``hydra.*`` setting as one line, with the valid names."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from .errors import suggest

    if m := re.search(r"Could not find 'hydra/launcher/([^']+)'", text):
        known = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], re.M)
        hint = suggest(m.group(1), known)
        plugin = "" if "submitit_local" in known else '; submitit_local and submitit_slurm need pip install "vidtok-bench[slurm]"'
        return f"hydra/launcher={m.group(1)}: unknown launcher{f' ({hint})' if hint else ''}; known: {', '.join(known)}{plugin}"
    if m := re.search(r"Could not override '([^']+)'", text):
        key = m.group(1)
        node, _, name = key.rpartition(".")
        groups = [o for o in hydra_overrides if "/" in o.partition("=")[0]]  # the launcher chosen, not its settings
        try:
            keys = sorted(OmegaConf.select(_compose_with_hydra([*settings, *groups]), node) or {}) if node else []
        except (HydraException, OmegaConfBaseException, TypeError):  # only the list of valid keys is lost
            keys = []
        hint = suggest(name, keys)
        return f"unknown key '{key}'{f' ({hint})' if hint else ''}" + (f"; {node} keys: {', '.join(keys)}" if keys else "")
    reason = " ".join(text.split("full_key:")[0].split())  # OmegaConf's "full_key: ..." lines repeat the key
    return f"invalid Hydra setting: {reason.removeprefix('Error merging override ')}"


def check_launcher(user: list[str], settings: list[str]) -> None:
    """ConfigError unless the sweep's launcher can start its jobs from here (Slurm's needs ``srun``)."""
    import shutil

    from .errors import ConfigError

    name, _ = launcher_settings(user, settings)
    if name == "submitit_slurm" and shutil.which("srun") is None:
        raise ConfigError("hydra/launcher=submitit_slurm: Slurm's srun is not on this machine's PATH; submit the sweep "
                          "from a Slurm login node (hydra/launcher=submitit_local runs the same jobs here as local processes)")


def print_sweep(user: list[str], settings: list[str], base: str) -> int:
    """``-m --cfg``: each job's resolved configuration and directory, and the launcher's settings; nothing runs."""
    import yaml

    from .config import _plugin_key_overrides, compose
    from .distributed import parse_shard, shard_dirname

    name, launcher = launcher_settings(user, settings)
    hydra_overrides = [o for o in user if _is_hydra(o)]
    jobs = job_overrides(user)
    for i, ovs in enumerate(jobs, 1):
        cfg = compose(ovs)  # the run's own checks of names and keys
        dirname = _compose_with_hydra([*settings, *hydra_overrides, *_plugin_key_overrides(ovs)]).hydra.job.override_dirname
        where = Path(base) / _dirname(dirname)
        if shard := parse_shard(cfg.get("shard")):
            where /= shard_dirname(*shard)
        print(f"# job {i} of {len(jobs)}: {' '.join(ovs) or '(defaults)'} -> {where}")
        print(yaml.safe_dump(cfg, sort_keys=False))
    print(f"# hydra.launcher ({name})")
    print(yaml.safe_dump(launcher, sort_keys=False), end="")
    return 0


def multirun(overrides: list[str], show_cfg: bool = False) -> int:
    """Run a sweep with Hydra (``-m``), or with ``show_cfg`` print what it would run; returns the exit status."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    from .config import _plugin_key_overrides
    from .errors import ConfigError

    user = list(overrides)
    base = DEFAULT_SWEEP_DIR
    for ov in list(user):
        key, _, value = ov.partition("=")
        if key == "output_dir":
            if len(job_overrides([ov])) > 1:
                raise ConfigError(f"{ov}: a sweep has one output_dir (each job gets its own directory below it); "
                                  "run one sweep per directory")
            base = value  # the sweep's directory; each job gets its own below it
            user.remove(ov)
    settings = sweep_settings(base, user)
    if show_cfg:
        return print_sweep(user, settings, base)
    check_launcher(user, settings)
    total = check_jobs(user, Path(base))
    (Path(base) / STATUS_FILE).unlink(missing_ok=True)  # this sweep's jobs only (a rerun's resumed ones say so again)
    task = hydra.main(version_base="1.3", config_path="pkg://vidtok_bench.conf", config_name="config")(job)
    argv = sys.argv
    sys.argv = ["vidtok-bench", "--multirun", *settings, *_plugin_key_overrides(user)]
    GlobalHydra.instance().clear()
    try:
        why = _launch(task)
    except SystemExit as exc:  # Hydra reports a failed job and exits
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    print(f"sweep: results under {base}/ (collect them with `vidtok-bench table {base}`)")
    return sweep_status(Path(base), total, why)
