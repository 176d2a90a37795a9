"""Arms: what a study file asks for (:class:`ArmSpec`) and what ran (:class:`ArmRecord`, one entry of
``study.json``'s ``arms``).

An arm's record is made here and only here. What a run decided is read from the run: its iteration
count and LR drops from the ``config.yaml`` it trained with (after ``solver.reference_world_size``
scaling), the images of its data regime from its ``final_metrics.json`` (the training set as the trainer
built it: images without instances left out). No torch: the verdict and the report read records too.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .. import run_dir
from ..config import max_iter, schedule_steps
from .groups import INITS, sched_label
from .provenance import arm_provenance

__all__ = [
    "ArmSpec",
    "ArmRecord",
    "ARM_KEYS",
    "expand_arms",
    "parse_regime",
    "pretraining_name",
    "finished_record",
]

ARM_KEYS = ("name", "init", "norm", "schedule", "data", "seed", "overrides", "weights", "weights_data")
# A plain file-name-safe word: an arm's name is its run directory under the study's arms/.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a study file after its lists are expanded: a single detector run."""

    name: str
    init: str = "random"
    norm: str = "GN"
    schedule: float = 1.0
    data: str = "100%"
    seed: int = 0
    overrides: tuple[str, ...] = ()
    weights: str | None = None
    weights_data: str | None = None

    @property
    def model_overrides(self) -> tuple[str, ...]:
        """The overrides that change the detector (its arch, backbone, heads), not its initial weights."""
        return tuple(o for o in self.overrides if o.startswith("model.") and not o.startswith("model.init="))


@dataclass
class ArmRecord:
    """What ran (or is about to): the arm's identity, status and what its run directory holds."""

    name: str
    init: str
    norm: str
    schedule: float
    data: str
    seed: int
    model: str
    status: str
    run_dir: str | None = None
    error: str | None = None
    final: dict[str, Any] | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    max_iter: int | None = None
    lr_drops: list[int] | None = None
    data_images: int | None = None
    per_image: dict[str, Any] | None = None
    job_id: str | None = None
    weights: str | None = None
    weights_data: str | None = None
    forked: dict[str, Any] | None = None  # {"from", "iteration", "wall_s"}: the trunk it continued

    @classmethod
    def of(cls, spec: ArmSpec, status: str, model: str, **known: Any) -> ArmRecord:
        """The record of ``spec`` with ``status``; ``known`` fills what is already known of it."""
        return cls(
            **{k: getattr(spec, k) for k in ("name", "init", "norm", "schedule", "data", "seed")},
            model=model,
            status=status,
            run_dir=f"arms/{spec.name}",
            weights=spec.weights,
            weights_data=spec.weights_data,
            **known,
        )

    def with_(self, **changes: Any) -> ArmRecord:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The study.json entry: ``weights`` / ``weights_data`` only for an arm of published weights,
        ``job_id`` only for an arm a cluster launcher ran, ``forked`` only for an arm forked from a trunk."""
        d = asdict(self)
        if not self.weights:
            d.pop("weights"), d.pop("weights_data")
        for key in ("job_id", "forked"):
            if d[key] is None:
                d.pop(key)
        return d


def finished_record(record: ArmRecord, run: Path) -> ArmRecord:
    """``record`` with what the run directory ``run`` holds: its schedule as it ran (config.yaml), its
    curve (metrics.jsonl) and, once finished, its final metrics, cost, provenance and training images."""
    config = run_dir.read_config(run)
    if config is not None:
        cfg = OmegaConf.create(config)
        record = record.with_(max_iter=max_iter(cfg), lr_drops=schedule_steps(cfg))
    record = record.with_(curve=run_dir.curve(run), forked=run_dir.read_forked(run))
    final = run_dir.read_final_metrics(run)
    if final is None:
        return record
    return record.with_(
        status="finished",
        final={k: v for k, v in final.items() if k not in ("cost", "provenance", "train_images")},
        cost=final.get("cost"),
        provenance=arm_provenance(final) or record.provenance,
        data_images=final.get("train_images", record.data_images),
    )


def parse_regime(data: Any) -> float | int | None:
    """``"100%"`` -> None (all), ``"10%"`` -> 0.1, ``"1k"`` -> 1000, ``500`` -> 500."""
    text = str(data).strip().lower()
    if text in ("100%", "all", "none", "1.0"):
        return None
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", text):
        return float(m.group(1)) / 100
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)k", text):
        return int(float(m.group(1)) * 1000)
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"0?\.\d+", text):
        return float(text)
    raise ValueError(f"data regime {data!r}: use a percentage ('10%'), a count (1000) or '1k'")


def pretraining_name(spec: ArmSpec, model: str, vary_seed: bool = False) -> str | None:
    """The shared pre-training ``spec`` starts from (None for none): arms with the same name share one.
    Classification: one per norm family. Direct: one per norm, data regime and, when the arm's overrides
    change the detector, per detector (``model``, its label). With ``vary_seed`` (``pretrain.vary_seed``:
    the pre-training's own seed is part of the training noise measured), one per arm seed too."""
    if spec.init == "classify":
        name = f"classify_{'gn' if spec.norm == 'GN' else 'bn'}"
    elif spec.init == "direct":
        name = f"direct_{spec.norm.lower()}_{_slug_regime(spec.data)}"
        if spec.model_overrides:
            name += "_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")
    else:
        return None
    return f"{name}_s{spec.seed}" if vary_seed else name


def _slug_regime(data: str) -> str:
    return str(data).replace("%", "pct").lower()


def _slug(weights: Any) -> str:
    """A short name part for a weights source: the enum member or the file's stem."""
    text = str(weights)
    text = text.split(".", 1)[1] if re.fullmatch(r"\w+_Weights\.\w+", text) else Path(text).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _checked(entry: Any, i: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"arms[{i}]: an arm is a mapping of {list(ARM_KEYS)}, got {type(entry).__name__}")
    if unknown := set(entry) - set(ARM_KEYS):
        raise ValueError(f"arms[{i}]: unknown field(s) {sorted(unknown)}; allowed: {list(ARM_KEYS)}")
    init = entry.get("init", "random")
    if init not in INITS:
        raise ValueError(f"arms[{i}]: init must be one of {', '.join(INITS)}, got {str(init)[:40]!r}")
    if (init == "weights") != ("weights" in entry):
        raise ValueError(f"arms[{i}]: 'weights: NAME_OR_PATH' goes with init: weights (and only with it)")
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ValueError(
            f"arms[{i}]: name {str(name)[:60]!r} must be a plain word of letters, digits, '.', '_' or '-' "
            "(it names the arm's run directory under arms/)"
        )
    return entry


def expand_arms(spec: list[dict[str, Any]]) -> list[ArmSpec]:
    """Expand list-valued fields into single arms with unique, file-name-safe names."""
    if not isinstance(spec, list):
        raise ValueError(f"arms must be a list of arms, got {type(spec).__name__}")
    arms: list[ArmSpec] = []
    names: set[str] = set()
    for i, entry in enumerate(spec):
        entry = _checked(entry, i)
        defaults = (("init", "random"), ("norm", "GN"), ("schedule", 1), ("data", "100%"), ("seed", 0))
        fields = {k: entry.get(k, d) for k, d in (*defaults, ("weights", None))}
        lists = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
        combos = list(itertools.product(*lists.values()))
        for combo in combos:
            arm = dict(zip(lists, combo, strict=True))
            init = f"weights-{_slug(arm['weights'])}" if arm["weights"] else arm["init"]
            auto = f"{init}_{arm['norm']}_{sched_label(float(arm['schedule']))}_{arm['data']}_s{arm['seed']}"
            auto = auto.replace("%", "pct").lower()
            name = entry.get("name")
            name = (name if len(combos) == 1 else f"{name}_{auto}") if name else auto
            if not _NAME.fullmatch(name):
                raise ValueError(f"arms[{i}]: arm name {name[:60]!r} is not a plain file-name-safe word")
            if name in names:
                raise ValueError(f"arms[{i}]: duplicate arm name {name!r}")
            names.add(name)
            arms.append(
                ArmSpec(
                    name=name,
                    init=arm["init"],
                    norm=str(arm["norm"]),
                    schedule=float(arm["schedule"]),
                    data=str(arm["data"]),
                    seed=arm["seed"],
                    overrides=tuple(entry.get("overrides", [])),
                    weights=arm["weights"],
                    weights_data=entry.get("weights_data"),
                )
            )
    return arms
