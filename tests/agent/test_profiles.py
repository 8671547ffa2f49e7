"""The experts' profiles file: the packaged one loads, and a bad one fails naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmind.agent.profiles import ProfileError, load_profiles, packaged_profiles_file, profile


def test_the_packaged_profiles_name_both_experts_of_the_stack() -> None:
    profiles = load_profiles()
    assert {"general", "coding"} <= set(profiles)
    for p in profiles.values():
        assert p.prompt.strip() and p.description.strip()
    assert profile("coding").prompt.startswith("You are a careful programming assistant")
    assert packaged_profiles_file().name == "experts.yaml" and packaged_profiles_file().parent.name == "agent"


def test_generation_defaults_are_checked_and_empty_means_the_servers(tmp_path: Path) -> None:
    f = tmp_path / "experts.yaml"
    f.write_text("experts:\n  a:\n    description: d\n    prompt: p\n    generation:\n      temperature: 0.2\n")
    assert load_profiles(f)["a"].generation.payload() == {"temperature": 0.2}
    f.write_text("experts:\n  a:\n    description: d\n    prompt: p\n    generation:\n")
    assert load_profiles(f)["a"].generation.payload() == {}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("experts:\n  a:\n    description: d\n", "experts.a.prompt: Field required"),
        ("experts:\n  a:\n    description: d\n    prompt: ''\n", "experts.a.prompt:"),
        ("experts:\n  a:\n    description: d\n    prompt: p\n    generation: {temperature: -1}\n",
         "experts.a.generation.temperature:"),
        ("experts:\n  a:\n    description: d\n    prompt: p\n    generation: {temprature: 1}\n",
         "experts.a.generation.temprature: Extra inputs"),
        ("experts:\n  Bad Name:\n    description: d\n    prompt: p\n", "experts.Bad Name.[key]:"),
        ("experts: {}\n", "experts:"),
        ("experts:\n  a: [unclosed\n", ":3: not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_file_names_the_file_and_the_field(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "experts.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profiles(f)
    assert str(err.value).startswith(str(f)) and where in str(err.value), str(err.value)
    assert isinstance(err.value, ValueError)


def test_an_unknown_expert_is_named_with_the_ones_there_are() -> None:
    with pytest.raises(ProfileError, match=r"no expert 'nope' \(it has: coding, general"):
        profile("nope")
