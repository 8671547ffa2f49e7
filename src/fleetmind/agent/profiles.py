"""The experts' profiles: each expert's description, system prompt and generation defaults, from ``experts.yaml``.

The file ships inside the agent package (``fleetmind/agent/experts.yaml``); :func:`load_profiles` reads it, or
another file of the same shape, and checks every field. The stack starts one llama-server per expert with its prompt.

Errors: :class:`ProfileError` (an ``AgentError`` and a ``ValueError``) names the file, the line where YAML itself
failed, and the dotted field that is wrong.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from fleetmind.agent import AgentError

PROFILES_FILE = "experts.yaml"
ExpertName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class ProfileError(AgentError, ValueError):
    """An experts file could not be loaded; the message says which file, line and field."""

    def __init__(self, message: str, *, file: Path | str, line: int | None = None, field: str | None = None) -> None:
        self.file = str(file)
        self.line = line
        self.field = field
        where = self.file + (f":{line}" if line is not None else "")
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{message}")


class Generation(BaseModel):
    """Sampling defaults of one expert; None leaves llama-server's own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=5)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0, le=5)
    # llama.cpp's DRY sampler ("don't repeat yourself"): penalises extending a sequence the text already holds;
    # 0 is off, 0.8 the value its authors suggest.
    dry_multiplier: float | None = Field(default=None, ge=0, le=5)
    dry_allowed_length: int | None = Field(default=None, ge=1, le=64)
    # What ends a repeated sequence for DRY. Each breaker costs the request a scan of the whole vocabulary when
    # llama-server sets up its sampler (SmolLM2: ~3 ms each; llama.cpp's four defaults ~12 ms before the first token).
    dry_sequence_breakers: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=8)
    max_tokens: int | None = Field(default=None, ge=1, le=1 << 20)
    seed: int | None = Field(default=None)

    def payload(self) -> dict[str, Any]:
        """The values that are set, as fields of a chat-completion request."""
        return self.model_dump(exclude_none=True)

    def meta(self) -> str:
        """The defaults as the JSON text an expert publishes in its registry meta (``generation``)."""
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_meta(cls, text: str | None) -> Generation:
        """The defaults an expert published; ValueError (naming the field) when the text is not a valid set."""
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ValueError(f"generation {where}: {first['msg']}") from None


class ExpertProfile(BaseModel):
    """What one expert is for and how it is prompted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1, description="What the expert is for (shown to people and the router).")
    prompt: str = Field(min_length=1, description="The expert's system prompt.")
    generation: Generation = Field(default_factory=Generation, description="Sampling defaults (empty: the server's).")

    @field_validator("generation", mode="before")
    @classmethod
    def _empty_is_none_set(cls, value: object) -> object:
        return {} if value is None else value  # `generation:` with nothing under it


class ExpertProfiles(BaseModel):
    """The whole file: ``experts:`` name -> profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experts: dict[ExpertName, ExpertProfile] = Field(min_length=1)


def packaged_profiles_file() -> Path:
    return Path(str(resources.files("fleetmind.agent") / PROFILES_FILE))


def load_profiles(path: Path | None = None) -> dict[str, ExpertProfile]:
    """The profiles in ``path`` (default: the packaged ``experts.yaml``), checked."""
    path = path or packaged_profiles_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read the experts file ({exc.strerror or exc})", file=path) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ProfileError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=path, line=line) from exc
    try:
        return dict(ExpertProfiles.model_validate(data).experts)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ProfileError(f"{first['msg']}{more}", file=path, field=field) from exc


@lru_cache
def packaged_profiles() -> dict[str, ExpertProfile]:
    """The packaged profiles, read once."""
    return load_profiles()


def profile(name: str) -> ExpertProfile:
    """The packaged profile of expert ``name``; a ProfileError names the file and the experts it has."""
    profiles = packaged_profiles()
    if name not in profiles:
        raise ProfileError(
            f"no expert {name!r} (it has: {', '.join(sorted(profiles))})",
            file=packaged_profiles_file(),
            field="experts",
        )
    return profiles[name]
