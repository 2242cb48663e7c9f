"""Reading a study file: YAML with duplicate keys refused, `--set` overrides, then validation."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from slotsweep.study.schema import Study, StudyError
from slotsweep.study.validate import parse_study


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which plain YAML resolves silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, refusing a key given twice (`<<:` merges may override on purpose)."""
        seen: list[Any] = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                problem = f"duplicate key '{key}'"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
    return f"{where}: {getattr(exc, 'problem', None) or exc}"


def apply_override(doc: dict[str, Any], override: str) -> None:
    """Set `KEY=VALUE` in a raw study: KEY a dotted path (list indices as .0 or [0]), VALUE YAML."""
    key, sep, text = override.partition("=")
    if not sep or not all(_parts(key)):
        raise StudyError([f"--set {override}: expected KEY=VALUE, e.g. trial.epochs=1"])
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise StudyError([f"--set {override}: {_yaml_problem(exc)}"]) from None
    set_dotted(doc, key, value, f"--set {override}")


def _parts(key: str) -> list[str]:
    return key.strip().replace("[", ".").replace("]", "").split(".")


def set_dotted(doc: dict[str, Any], key: str, value: Any, label: str) -> None:
    """Set the dotted path `key` of a raw study to `value`; `label` names the change in errors."""
    parts = _parts(key)
    if not all(parts):
        raise StudyError([f"{label}: '{key}' is not a dotted key path"])
    node: Any = doc
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            part = int(part)
        elif not isinstance(node, dict):
            where = ".".join(parts[:depth])
            raise StudyError([f"{label}: {where} has no entry '{part}'"])
        if depth == len(parts) - 1:
            node[part] = value
        elif isinstance(node, dict) and node.get(part) is None:
            node[part] = {}  # a missing section is created, as its defaults would be
        node = node[part]


def apply_preset(doc: dict[str, Any], name: str) -> None:
    """Apply the study's preset `name` (a mapping of dotted keys to values) to a raw study."""
    presets = doc.get("presets") or {}
    if not isinstance(presets, dict) or not isinstance(presets.get(name), dict):
        known = ", ".join(presets) if isinstance(presets, dict) and presets else "none"
        raise StudyError([f"presets: no preset '{name}' in this study (known: {known})"])
    for key, value in presets[name].items():
        set_dotted(doc, str(key), copy.deepcopy(value), f"presets.{name}.{key}")


def _preset_problems(doc: dict[str, Any], source: str) -> list[str]:
    """Problems of every preset of a valid study, each prefixed by the preset's key path."""
    problems = []
    for name in doc.get("presets") or {}:
        variant = copy.deepcopy(doc)
        try:
            apply_preset(variant, name)
            parse_study(variant, source)
        except StudyError as exc:
            problems += [
                p if p.startswith("presets.") else f"presets.{name}: {p}" for p in exc.problems
            ]
    return problems


def load_study(path: str | Path, overrides: Sequence[str] = (), preset: str | None = None) -> Study:
    """Read a study file, apply its `preset` then `--set KEY=VALUE` overrides, and validate it.

    Every preset of the file is checked too, so a broken quick version is found before a launch.
    """
    path = Path(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise StudyError([f"{path}: no such study file"], str(path)) from None
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex()
        raise StudyError(
            [
                f"{path}: not UTF-8 text (byte 0x{byte} at offset {exc.start}); "
                "a study file is YAML saved as UTF-8"
            ],
            str(path),
        ) from None
    except OSError as exc:
        raise StudyError([f"{path}: cannot read ({exc.strerror or exc})"], str(path)) from None
    except yaml.YAMLError as exc:
        raise StudyError([_yaml_problem(exc)], str(path)) from None
    problems = []
    if preset is not None and isinstance(doc, dict | None):
        doc = {} if doc is None else doc
        try:
            apply_preset(doc, preset)
        except StudyError as exc:
            problems += exc.problems
    for override in overrides if isinstance(doc, dict | None) else ():
        doc = {} if doc is None else doc
        try:
            apply_override(doc, override)
        except StudyError as exc:
            problems += exc.problems
    if problems:
        raise StudyError(problems, str(path))
    raw = copy.deepcopy(doc)
    study = parse_study(doc, str(path))
    problems = _preset_problems(raw, str(path)) if preset is None and not overrides else []
    if problems:
        raise StudyError(problems, str(path))
    return study
