"""The ``scratchlab`` command. It only parses arguments and calls into the package.

scratchlab train CONFIG --out DIR [--resume] [key=value ...]
scratchlab eval CONFIG --weights FILE [--out DIR] [--per-class] [--dump-detections] [key=value ...]
scratchlab predict RUN_DIR_OR_WEIGHTS IMAGES... --out DIR [--score-thresh 0.5] [--device auto]
scratchlab export RUN_DIR --format {torchscript,onnx} --out FILE
scratchlab data synth --out DIR [--num-train N] [--num-val M] [--image-size S] [--seed K] [key=value ...]
scratchlab data synth-classify --out DIR [--classes C] [--per-class N] [--image-size S] [--seed K] [key=value ...]
scratchlab data convert --from {voc,via,yolo,labelme,masks} SRC --out DIR [--split F] [--seed K]
    [--class-name NAME] [--attribute NAME] [--images-dir D --masks-dir D --classes FILE] [--names FILE]
scratchlab data export --to yolo ANN.json [ANN.json] --images DIR [DIR] --out DIR [--copy]
scratchlab data check ANN.json --images DIR
scratchlab data show ANN.json --images DIR --out DIR [-n 16]
scratchlab pretrain classify CONFIG --out DIR [--resume] [key=value ...]
scratchlab pretrain direct CONFIG --out DIR [--resume] [key=value ...]
scratchlab study STUDY.yaml --out DIR [key=value ...] [--launcher {inline,local,slurm}] [--gpus-per-node N]
    [--nodes N] [--partition P] [--timeout MIN] [--max-parallel N]
scratchlab study STUDY.yaml --plan [--out DIR] [key=value ...]
scratchlab study --report-only DIR
scratchlab study --status DIR
scratchlab study --calibrate-noise DIR
scratchlab demo [--quick | --calibrate-noise] --out DIR
scratchlab recipes [FOLDER ...] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .data.formats import CONVERT_HELP, FORMATS
from .study.groups import LAUNCHERS

__all__ = ["main", "build_parser"]

RECIPE_FOLDERS = ("configs/coco", "configs/imagenet")  # the full-size recipes `scratchlab recipes` snapshots


def _cmd_train(a: argparse.Namespace) -> int:
    from .config import load_config
    from .engine import train

    final = train(load_config(a.config, a.overrides), a.out, resume=a.resume)
    print(json.dumps({k: v for k, v in final.items() if k != "cost"}, indent=2))
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import load_config
    from .engine.evaluate import evaluate_checkpoint, format_per_class

    if a.dump_detections and not a.out:
        raise ValueError("--dump-detections writes OUT/detections.json: give --out DIR")
    detections = Path(a.out) / "detections.json" if a.dump_detections else None
    figures = a.out if a.per_class and a.out else None
    results = evaluate_checkpoint(
        load_config(a.config, a.overrides),
        a.weights,
        per_class=a.per_class,
        detections=detections,
        figures=figures,
    )
    text = json.dumps(results, indent=2)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "eval_metrics.json").write_text(text)
    print(text)
    if a.per_class:
        print(format_per_class(results))
    if detections is not None:
        print(f"detections (COCO results JSON): {detections}")
    return 0


def _cmd_predict(a: argparse.Namespace) -> int:
    from .engine.predict import predict

    results = predict(
        a.weights,
        a.images,
        out=a.out,
        score_thresh=a.score_thresh,
        device=a.device,
        on_image=lambda line: print(line, flush=True),
    )
    unreadable = [r["file"] for r in results if r["error"]]
    print(
        f"{len(results) - len(unreadable)} image(s) drawn in {a.out}; detections in {a.out}/results.json "
        f"(image ids: {a.out}/images.json)"
    )
    if unreadable:
        print(
            f"scratchlab: {len(unreadable)} unreadable image(s) skipped: {', '.join(unreadable)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from .engine.export import export_model

    done = export_model(a.run, a.format, a.out)
    print(f"wrote {done['file']} ({done['format']}, {done['arch']}, outputs {', '.join(done['outputs'])})")
    return 0


def _cmd_show(a: argparse.Namespace) -> int:
    from .vis.show import show_dataset

    unreadable: list[str] = []
    written = show_dataset(
        a.ann, a.images, a.out, n=a.n, on_image=lambda line: print(line, flush=True), unreadable=unreadable
    )
    print(f"{len(written)} image(s) with ground truth drawn in {a.out}")
    if unreadable:
        print(
            f"scratchlab: {len(unreadable)} unreadable image(s) skipped: {', '.join(unreadable)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _synth_section(a: argparse.Namespace, section: str, flags: dict[str, str]) -> dict:
    """The config's ``section`` (``DEFAULTS`` <- the given flags <- ``key=value`` overrides) as a dict.

    ``flags`` maps an argparse destination to its key in the section; an override's key may be written
    with or without the section's prefix (``max_objects=3`` or ``data.synth.max_objects=3``)."""
    from omegaconf import OmegaConf

    from .config import load_config

    given = [
        f"{section}.{key}={getattr(a, dest)}" for dest, key in flags.items() if getattr(a, dest) is not None
    ]
    extra = [o if o.startswith(section + ".") else f"{section}.{o}" for o in a.overrides]
    cfg = load_config(None, [*given, *extra])
    return OmegaConf.to_container(OmegaConf.select(cfg, section))


def _cmd_synth(a: argparse.Namespace) -> int:
    from .data.synth import make_synth_detection

    flags = {k: k for k in ("num_train", "num_val", "image_size", "seed", "min_object_size")}
    summary = make_synth_detection(a.out, **_synth_section(a, "data.synth", flags))
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_synth_classify(a: argparse.Namespace) -> int:
    from .data.synth_classify import make_synth_classify

    flags = {k: k for k in ("classes", "per_class", "image_size", "seed")}
    section = _synth_section(a, "classify.synth", flags)
    summary = make_synth_classify(a.out, **section, val_per_class=a.val_per_class)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_convert(a: argparse.Namespace) -> int:
    from .data.convert import convert_dataset, format_summary

    print(
        format_summary(
            convert_dataset(
                a.fmt,
                a.src,
                a.out,
                split=a.split,
                seed=a.seed,
                attribute=a.attribute,
                class_name=a.class_name,
                images_dir=a.images_dir,
                masks_dir=a.masks_dir,
                classes=a.classes,
                names=a.names,
            )
        )
    )
    return 0


def _cmd_data_export(a: argparse.Namespace) -> int:
    from .data.export_yolo import export_yolo

    done = export_yolo(a.ann, a.images, a.out, copy=a.copy)
    for split, n in done["splits"].items():
        crowd = f", {n['crowd_skipped']} crowd regions left out" if n["crowd_skipped"] else ""
        print(f"{split}: {n['images']} images, {n['annotations']} labels{crowd}")
    print(f"wrote {done['yaml']} ({len(done['names'])} classes: {', '.join(done['names'][:20])})")
    return 0


def _cmd_check(a: argparse.Namespace) -> int:
    from .data.check import check_dataset, format_report

    problems = check_dataset(a.ann, a.images, progress=True)
    if problems:
        print(format_report(problems))
    errors = [p for p in problems if p.severity == "error"]
    print(
        f"{a.ann}: {'clean' if not errors else f'{len(errors)} error(s)'}"
        f"{f', {len(problems) - len(errors)} warning(s)' if len(problems) > len(errors) else ''}"
    )
    return 1 if errors else 0


def _cmd_pretrain_classify(a: argparse.Namespace) -> int:
    from .config import load_config
    from .pretrain.classify import pretrain_classify

    print(json.dumps(pretrain_classify(load_config(a.config, a.overrides), a.out, resume=a.resume), indent=2))
    return 0


def _cmd_pretrain_direct(a: argparse.Namespace) -> int:
    from .config import load_config
    from .pretrain.direct import pretrain_direct

    final = pretrain_direct(load_config(a.config, a.overrides), a.out, resume=a.resume)
    print(json.dumps(final, indent=2))
    return 0


def _cmd_study(a: argparse.Namespace) -> int:
    from .study.store import rebuild_report

    if a.status:
        from .study.status import format_status

        print(format_status(a.status))
        return 0
    if a.calibrate_noise:
        from .study.store import calibrate_noise

        print(calibrate_noise(a.calibrate_noise), end="")
        return 0
    if a.plan:
        if not a.study:
            raise ValueError("scratchlab study --plan: give the STUDY.yaml to plan")
        from .study.runner import plan_study

        print(plan_study(a.study, a.out, a.overrides))
        return 0
    if a.report_only:
        if a.study or a.overrides:  # they would be silently ignored: the arms have run already
            raise ValueError(
                "scratchlab study --report-only DIR runs no arm: give it no STUDY.yaml or key=value"
            )
        study = rebuild_report(a.report_only)
    elif a.study and a.out and a.launcher == "inline":
        from .study.runner import run_study

        study = run_study(a.study, a.out, a.overrides)
    elif a.study and a.out:
        from .study.launcher import launch_study

        study = launch_study(
            a.study,
            a.out,
            a.launcher,
            overrides=a.overrides,
            gpus_per_node=a.gpus_per_node,
            nodes=a.nodes,
            partition=a.partition,
            timeout=a.timeout,
            max_parallel=a.max_parallel,
        )
    else:
        raise ValueError("scratchlab study: give STUDY.yaml --out DIR, --report-only DIR or --status DIR")
    from .study.verdict import verdict_lines

    print(study["verdict"]["headline"])
    print("\n".join(verdict_lines(study["verdict"])))
    print(f"report: {study['report']['html']}")
    failed = [arm["name"] for arm in study["arms"] if arm["status"] == "failed"]
    if failed and not a.report_only:  # a script must not take a study with crashed arms for a done one
        print(
            f"scratchlab: {len(failed)} arm(s) failed: {', '.join(failed)} (the report says why)",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from .study.demo import run_demo

    run_demo(a.out, quick=a.quick, calibrate_noise=a.calibrate_noise)
    return 0


def _cmd_recipes(a: argparse.Namespace) -> int:
    from .recipes import stale_snapshots, write_snapshots

    stale = 0
    for folder in a.folders:
        if a.check:
            names = stale_snapshots(folder)
            stale += len(names)
            for name in names:
                print(f"{folder}/resolved/{name}: differs from what the recipes resolve to")
        else:
            changed = write_snapshots(folder)
            print(
                f"{len(changed)} snapshot(s) written or removed in {folder}/resolved"
                + "".join(f"\n  {n}" for n in changed)
            )
    return 1 if stale else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scratchlab",
        description="Train detectors from random init or pre-trained weights, and measure what "
        "pre-training buys on your data. Commands:",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1]
        if __doc__
        else None,  # the usage lines, not the module's first line
    )
    sub = p.add_subparsers(dest="command", required=True)

    def with_overrides(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("config", help="YAML config file (configs/...)")
        sp.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. solver.base_lr=0.01")

    t = sub.add_parser("train", help="train a detector from a config")
    with_overrides(t)
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pth")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a whole-detector checkpoint on data.val_json")
    with_overrides(e)
    e.add_argument(
        "--weights", required=True, help="checkpoint file (model_final.pth or checkpoints/last.pth)"
    )
    e.add_argument("--out", help="folder for eval_metrics.json (and detections.json)")
    e.add_argument(
        "--per-class",
        action="store_true",
        help="also AP of each class (a table, AP-<class> keys; with --out, OUT/pr_bbox.png etc.)",
    )
    e.add_argument(
        "--dump-detections",
        action="store_true",
        help="write the detections as COCO results JSON to OUT/detections.json",
    )
    e.set_defaults(func=_cmd_eval)

    pr = sub.add_parser("predict", help="draw a trained run's detections on images; write COCO results JSON")
    pr.add_argument(
        "weights", metavar="RUN_DIR_OR_WEIGHTS", help="a finished run directory or its model_final.pth"
    )
    pr.add_argument("images", nargs="+", metavar="IMAGES", help="image files and/or folders of images")
    pr.add_argument("--out", required=True, help="folder for the drawn images, results.json and images.json")
    pr.add_argument("--score-thresh", type=float, default=0.5, help="keep detections scoring at least this")
    pr.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda | cuda:N")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser("export", help="write a trained Mask/Faster R-CNN as TorchScript or ONNX")
    ex.add_argument("run", metavar="RUN_DIR", help="a finished run directory or its model_final.pth")
    ex.add_argument("--format", required=True, choices=["torchscript", "onnx"])
    ex.add_argument("--out", required=True, metavar="FILE", help="the model file to write")
    ex.set_defaults(func=_cmd_export)

    d = sub.add_parser("data", help="make, convert and check datasets").add_subparsers(
        dest="data_cmd", required=True
    )
    s = d.add_parser(
        "synth",
        help="generate the synthetic instance-segmentation set (COCO JSON); defaults: the config's data.synth",
    )
    s.add_argument("--out", required=True)
    s.add_argument("--num-train", type=int)
    s.add_argument("--num-val", type=int)
    s.add_argument("--image-size", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument(
        "--min-object-size",
        type=float,
        help="smallest object, as a fraction of the short side (0.2+ drops small objects)",
    )
    s.add_argument("overrides", nargs="*", help="data.synth key=value overrides, e.g. max_objects=3")
    s.set_defaults(func=_cmd_synth)

    sc = d.add_parser(
        "synth-classify",
        help="generate an ImageFolder classification set (pre-training); defaults: the config's classify.synth",
    )
    sc.add_argument("--out", required=True)
    sc.add_argument("--classes", type=int)
    sc.add_argument("--per-class", type=int)
    sc.add_argument(
        "--val-per-class", type=int, help="validation images per class (default: max(2, per-class // 5))"
    )
    sc.add_argument("--image-size", type=int)
    sc.add_argument("--seed", type=int)
    sc.add_argument(
        "overrides", nargs="*", help="classify.synth key=value overrides, e.g. class_colours=true"
    )
    sc.set_defaults(func=_cmd_synth_classify)

    c = d.add_parser(
        "convert",
        help="convert VOC / VIA / YOLO / LabelMe / instance masks to COCO JSON",
        description=CONVERT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--from", dest="fmt", required=True, choices=FORMATS)
    c.add_argument("src", help="source folder (or the VIA / LabelMe JSON file, or the YOLO dataset YAML)")
    c.add_argument("--out", required=True)
    c.add_argument("--split", type=float, default=None, help="fraction of images for a seeded val split")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--class-name",
        metavar="NAME",
        help="class of objects without one (every object of a single-class set)",
    )
    c.add_argument("--attribute", metavar="NAME", help="via: the region attribute that holds the class")
    c.add_argument(
        "--images-dir", metavar="DIR", help="masks: image folder, relative to SRC (default images)"
    )
    c.add_argument("--masks-dir", metavar="DIR", help="masks: mask folder, relative to SRC (default masks)")
    c.add_argument(
        "--classes",
        metavar="FILE",
        help="masks: YAML/JSON map of instance id -> class name (or image -> such a map)",
    )
    c.add_argument(
        "--names",
        metavar="FILE",
        help="yolo: the dataset YAML (names:, train:, val:) or class names file (one a line)",
    )
    c.set_defaults(func=_cmd_convert)

    dx = d.add_parser(
        "export", help="write COCO annotations and their images as an Ultralytics (YOLO) dataset"
    )
    dx.add_argument("--to", required=True, choices=["yolo"])
    dx.add_argument(
        "ann", nargs="+", metavar="ANN.json", help="COCO files, e.g. instances_train.json instances_val.json"
    )
    dx.add_argument(
        "--images", required=True, nargs="+", metavar="DIR", help="their image folder (one, or one per file)"
    )
    dx.add_argument("--out", required=True, help="folder for data.yaml, images/ and labels/")
    dx.add_argument("--copy", action="store_true", help="copy the images (default: symlinks to them)")
    dx.set_defaults(func=_cmd_data_export)

    ck = d.add_parser("check", help="validate a COCO dataset: exit 0 when clean, 1 when problems were found")
    ck.add_argument("ann", help="COCO annotations JSON")
    ck.add_argument("--images", required=True, help="folder the file_name entries are relative to")
    ck.set_defaults(func=_cmd_check)

    sh = d.add_parser(
        "show", help="draw the ground truth of a COCO dataset on its images (check a conversion)"
    )
    sh.add_argument("ann", help="COCO annotations JSON")
    sh.add_argument("--images", required=True, help="folder the file_name entries are relative to")
    sh.add_argument("--out", required=True, help="folder for the drawn images")
    sh.add_argument("-n", type=int, default=16, help="how many images (the first by image id)")
    sh.set_defaults(func=_cmd_show)

    pt = sub.add_parser("pretrain", help="pre-training paths").add_subparsers(dest="pt_cmd", required=True)
    pc = pt.add_parser("classify", help="ImageNet-style classification pre-training of the backbone")
    with_overrides(pc)
    pc.add_argument("--out", required=True)
    pc.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pth")
    pc.set_defaults(func=_cmd_pretrain_classify)
    pd = pt.add_parser("direct", help="direct detection pre-training: low-res stage 1, full-res stage 2")
    with_overrides(pd)
    pd.add_argument("--out", required=True, help="folder for stage1/ and stage2/ (two run directories)")
    pd.add_argument("--resume", action="store_true", help="continue the unfinished stage from its last.pth")
    pd.set_defaults(func=_cmd_pretrain_direct)

    st = sub.add_parser("study", help="run a pre-training vs scratch study and write its report")
    st.add_argument("study", nargs="?", help="study YAML file")
    st.add_argument(
        "overrides",
        nargs="*",
        help="key=value config overrides applied to every arm, e.g. "
        "data.train_json=... (point a shipped study at your dataset)",
    )
    st.add_argument("--out", help="the study's directory (arms, study.json, report)")
    st.add_argument(
        "--plan",
        action="store_true",
        help="print the arms as a tree of shared trunks, their segments and the iterations the study runs "
        "against the arms' sum (last line: 'iterations: RUN of SUM (P%%)'); runs nothing. With --out DIR: "
        "which segments are done",
    )
    st.add_argument(
        "--report-only",
        metavar="DIR",
        help="rebuild DIR's verdict (intervals included) and report from DIR/study.json; runs no arm",
    )
    st.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="inline",
        help="inline: arms one after another in this process; local/slurm: each arm a submitit job",
    )
    st.add_argument("--gpus-per-node", type=int, help="GPUs (= tasks) per node of each job (launcher: block)")
    st.add_argument("--nodes", type=int, help="nodes per job")
    st.add_argument("--partition", help="Slurm partition")
    st.add_argument(
        "--timeout", type=int, help="each job's time limit in minutes (it then requeues and resumes)"
    )
    st.add_argument("--max-parallel", type=int, help="at most this many jobs queued or running at once")
    st.add_argument(
        "--status", metavar="DIR", help="print a table of DIR's arms: status, iteration, last AP, job id"
    )
    st.add_argument(
        "--calibrate-noise",
        metavar="DIR",
        help="measure training noise on DIR (a finished study with 2+ seeds per arm): print the noise: "
        "block for study files of that recipe, and write it to DIR/noise.yaml",
    )
    st.set_defaults(func=_cmd_study)

    dm = sub.add_parser("demo", help="the miniature study on generated data, with a report")
    dm.add_argument("--out", default="runs/demo")
    dm.add_argument("--quick", action="store_true", help="a much shorter smoke version")
    dm.add_argument(
        "--calibrate-noise",
        action="store_true",
        help="measure the demo recipe's training noise (every arm at 3 seeds, about 3x the demo's time); "
        "writes OUT/noise.yaml, the block configs/studies/noise/demo.yaml holds",
    )
    dm.set_defaults(func=_cmd_demo)

    rc = sub.add_parser(
        "recipes", help="write each recipe's fully resolved config (and RECIPES.md's APs) to FOLDER/resolved/"
    )
    rc.add_argument(
        "folders",
        nargs="*",
        default=list(RECIPE_FOLDERS),
        metavar="FOLDER",
        help="recipe folders (default: configs/coco configs/imagenet); a RECIPES.md there is snapshotted too",
    )
    rc.add_argument("--check", action="store_true", help="write nothing; exit 1 when a snapshot differs")
    rc.set_defaults(func=_cmd_recipes)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scratchlab`` console script and ``python -m scratchlab``."""
    parser = build_parser()
    # key=value overrides may come after options (`train CFG --out DIR solver.base_lr=0.01`), which
    # argparse cannot assign to a positional list once it has been filled: collect them here.
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from .config import ConfigError
    from .utils.lock import DirectoryInUseError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"scratchlab: config error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (`scratchlab data synth ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush goes nowhere
        return 1
    # OSError: a missing file, an --out naming an existing file, a full disk, no permission: each message
    # names the path.
    except (OSError, ValueError, DirectoryInUseError) as exc:
        print(f"scratchlab: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # a diverged run: the message names the iteration and checkpoint
        print(f"scratchlab: training stopped: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
