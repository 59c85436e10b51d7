"""Pack a conda environment (conda-pack) or a virtualenv (venv-pack) for YARN.

One pass: the packer's file list, minus the kernelspecs, plus their patched
versions at the end, so the archive holds exactly one ``kernel.json`` per
kernel and the source environment is never touched. The archive is written
under a temporary name and renamed when complete; its metadata record
(``<archive>.json``) is written last.
"""
import dataclasses
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterable
from pathlib import Path

from .exceptions import UsageError
from .kernelspecs import plan_patches
from .progress import Progress

__all__ = ["PackResult", "REQUIRED", "ARCHIVE_SUFFIXES", "find_prefix", "environment_kind",
           "installed_packages", "check_requirements", "pack", "sha256_file", "metadata_path"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar")
#: What each kind of job needs in the environment (alternatives in a tuple).
REQUIRED: dict[str, tuple] = {
    "notebook": ("skein", ("jupyter-server", "notebook", "jupyterlab"), "ipykernel"),
    "run": ("skein", "papermill", "ipykernel"),
    "kernel": ("skein", "ipykernel"),
}
REQUIRED["all"] = tuple(dict.fromkeys(REQUIRED["notebook"] + REQUIRED["run"]))  # a kernel needs no more
METADATA_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class PackResult:
    archive: Path
    metadata: dict
    patched_kernels: tuple
    seconds: float


def metadata_path(archive: str | os.PathLike[str]) -> Path:
    return Path(str(archive) + ".json")


def _conda_env_dirs():
    dirs = [Path(p) for p in os.environ.get("CONDA_ENVS_PATH", "").split(os.pathsep) if p]
    for var in ("CONDA_ROOT", "CONDA_PREFIX_1", "CONDA_PREFIX"):
        if os.environ.get(var):
            root = Path(os.environ[var])
            dirs.append(root / "envs" if (root / "envs").is_dir() else root.parent)
    home = Path.home()
    dirs += [home / ".conda" / "envs", home / "miniconda3" / "envs", home / "anaconda3" / "envs",
             home / "miniforge3" / "envs", home / "micromamba" / "envs", Path("/opt/conda/envs")]
    return list(dict.fromkeys(dirs))


def environment_kind(prefix: str | os.PathLike[str]) -> str | None:
    """``"conda"`` (has conda-meta/), ``"venv"`` (has pyvenv.cfg), or None."""
    prefix = Path(prefix)
    if (prefix / "conda-meta").is_dir():
        return "conda"
    if (prefix / "pyvenv.cfg").is_file():
        return "venv"
    return None


def find_prefix(conda: str | None = None, prefix: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The environment to pack: a named conda env, a prefix, or the running Python's.

    Returns
    -------
    (Path, str)
        The prefix and its kind, ``"conda"`` or ``"venv"``.
    """
    if conda and prefix:
        raise UsageError("give either --conda NAME or --prefix PATH, not both")
    if conda:
        for directory in _conda_env_dirs():
            if (directory / conda / "conda-meta").is_dir():
                return directory / conda, "conda"
        looked = ", ".join(str(d) for d in _conda_env_dirs())
        raise UsageError(f"no conda environment named {conda!r} (looked in {looked}); check `conda env "
                         "list`, or give its path with --prefix")
    if prefix:
        path = Path(prefix).expanduser().absolute()
        if not path.is_dir():
            raise UsageError(f"environment prefix {path} does not exist; check the path")
        kind = environment_kind(path)
        if kind is None:
            raise UsageError(f"{path} is neither a conda environment (no conda-meta/) nor a virtualenv "
                             "(no pyvenv.cfg); give the environment's root directory")
        return path, kind
    path = Path(sys.prefix)
    kind = environment_kind(path)
    if kind is None:
        raise UsageError(f"the running Python's prefix {path} is neither a conda environment nor a "
                         "virtualenv; give one with --conda NAME or --prefix PATH")
    return path, kind


def _normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages(prefix: str | os.PathLike[str]) -> dict[str, str]:
    """``{normalized name: version}`` from the environment's ``*.dist-info``/``*.egg-info``."""
    packages = {}
    for site in Path(prefix).glob("lib/python3*/site-packages"):
        for info in site.iterdir():
            if info.suffix in (".dist-info", ".egg-info"):
                name, _, version = info.stem.partition("-")
                packages[_normalize(name)] = version.split("-")[0]
    return dict(sorted(packages.items()))


def check_requirements(packages: Collection[str], job: str) -> None:
    """Raise :class:`UsageError` listing what ``job`` needs and the environment lacks."""
    if job not in REQUIRED:
        raise UsageError(f"--for {job!r} is not one of {', '.join(REQUIRED)}")
    missing = []
    for need in REQUIRED[job]:
        options = need if isinstance(need, tuple) else (need,)
        if not any(option in packages for option in options):
            missing.append(options[0])
    if missing:
        what = {"notebook": "notebook servers", "run": "papermill runs", "kernel": "YARN kernels",
                "all": "notebook servers, runs and kernels"}[job]
        others = {"all": " or pack for one kind of job with --for notebook, --for run or --for kernel"}.get(job, "")
        raise UsageError(f"the environment lacks {', '.join(missing)}, needed for {what}: install "
                         f"{'it' if len(missing) == 1 else 'them'} (pip install {' '.join(missing)}){others}")


def _python_info(prefix):
    python = Path(prefix) / "bin" / "python"
    if not python.exists():
        raise UsageError(f"the environment {prefix} has no Python (bin/python is missing); install python in it")
    code = "import json, sys, sysconfig; print(json.dumps([sys.version.split()[0], sysconfig.get_platform()]))"
    try:
        proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
        version, platform = json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        raise UsageError(f"the environment's Python {python} does not run; repair or recreate the environment") from None
    return version, platform


def sha256_file(path: str | os.PathLike[str], chunk: int = 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_output(output: str | os.PathLike[str], force: bool) -> Path:
    output = Path(output).expanduser().absolute()
    if not output.name.endswith(ARCHIVE_SUFFIXES):
        raise UsageError(f"output {output} must end in {', '.join(ARCHIVE_SUFFIXES)} (YARN unpacks those)")
    if not output.parent.is_dir():
        raise UsageError(f"output directory {output.parent} does not exist; create it or choose another -o")
    if not os.access(output.parent, os.W_OK):
        raise UsageError(f"output directory {output.parent} is not writable; choose another -o")
    if output.exists() and not force:
        raise UsageError(f"{output} already exists; pass --force to replace it")
    return output


def _load(kind, prefix):
    """The packer's view of the environment; its refusals become our errors."""
    try:
        if kind == "conda":
            import conda_pack

            return conda_pack.CondaEnv.from_prefix(str(prefix)), f"conda-pack {conda_pack.__version__}"
        import venv_pack

        return venv_pack.Env(str(prefix)), f"venv-pack {venv_pack.__version__}"
    except Exception as exc:  # the packers raise their own exception types for every refusal
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = ("reinstall editable packages without -e (pip install PATH)" if "editable" in str(exc).lower()
               else "fix the environment and pack again")
        raise UsageError(f"cannot pack {prefix}: {message}; {fix}") from None


def _file_class(kind):
    if kind == "conda":
        from conda_pack.core import File

        return lambda source, target: File(source, target, is_conda=False, file_mode="unknown")
    from venv_pack.core import File

    return File


def _stem(filename):
    for suffix in ARCHIVE_SUFFIXES:
        filename = filename[: -len(suffix)] if filename.endswith(suffix) else filename
    return filename


def pack(output: str | os.PathLike[str], conda: str | None = None, prefix: str | os.PathLike[str] | None = None,
         job: str = "all", compress_level: int = 4, n_threads: int = 1, exclude: Iterable[str] = (),
         force: bool = False, name: str | None = None, progress: Progress | None = None) -> PackResult:
    """Pack an environment into ``output`` with its kernelspecs patched; write its metadata record.

    Parameters
    ----------
    output : str
        The archive to write (``.tar.gz``, ``.tgz``, ``.zip`` or ``.tar``).
    conda, prefix : str, optional
        A conda environment name, or an environment's root directory; the
        running Python's environment when neither is given.
    job : {"all", "notebook", "run", "kernel"}
        Which jobs the environment must be able to run; checked before packing.
    compress_level : int
        0-9; higher is smaller and slower.
    n_threads : int
        Compression threads (conda-pack only; -1 for all cores).
    exclude : list of str
        Glob patterns of files to leave out, relative to the prefix.
    force : bool
        Replace an existing ``output``.
    name : str, optional
        The environment's name in listings; the archive's name by default.

    Returns
    -------
    PackResult
    """
    import time

    from .environment import check_name

    progress = progress or Progress.quiet()
    start = time.monotonic()
    try:
        check_name(name if name is not None else _stem(Path(output).name))
    except ValueError as exc:
        flag = "--name" if name is not None else f"-o {output} (its name is the environment's)"
        raise UsageError(f"{flag}: {exc}; `--env NAME` must be able to name it, so give --name NAME") from None
    output = _check_output(output, force)
    if not 0 <= compress_level <= 9:
        raise UsageError(f"--compress-level {compress_level} is not between 0 and 9")
    path, kind = find_prefix(conda, prefix)
    packages = installed_packages(path)
    check_requirements(packages, job)
    python, platform = _python_info(path)
    try:
        patches = plan_patches(path)
    except ValueError as exc:
        raise UsageError(f"{exc}; fix or remove that kernelspec") from None
    progress.step(f"packing {kind} environment {path} ({len(packages)} packages)")
    env, packer = _load(kind, path)
    for pattern in exclude:
        env = env.exclude(pattern)
    for patch in patches:
        env = env.exclude(patch.target)

    stem = _stem(output.name)
    fd, partial = tempfile.mkstemp(prefix=f".{stem}.", suffix=".partial" + output.name[len(stem):],
                                   dir=output.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="skein-jupyter-kernels-") as tmp:
            make_file = _file_class(kind)
            for i, patch in enumerate(patches):
                source = Path(tmp) / f"{i}-kernel.json"
                source.write_bytes(patch.content)
                env.files.append(make_file(str(source), patch.target))
            options = {"n_threads": n_threads} if kind == "conda" else {}
            env.pack(output=partial, force=True, compress_level=compress_level, **options)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp made it private; an archive is for sharing
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    progress.step(f"hashing {output.name}")
    stat = output.stat()
    metadata = {
        "format": METADATA_FORMAT,
        "name": name or stem,
        "sha256": sha256_file(output),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "archive": output.name,
        "packer": packer,
        "kind": kind,
        "python": python,
        "platform": platform,
        "job": job,
        "kernels": {p.name: p.patched for p in patches},
        "packages": packages,
        "prefix": str(path),
        "packed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record = metadata_path(output)
    tmp_record = record.with_name(f".{record.name}.partial")
    tmp_record.write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    os.replace(tmp_record, record)
    return PackResult(output, metadata, tuple(p for p in patches if p.changed), time.monotonic() - start)
