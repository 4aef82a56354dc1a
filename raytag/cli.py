"""The ``raytag`` command line.

Subcommands import their heavy dependencies lazily, so ``raytag --help`` stays fast, and
check every argument (:mod:`raytag.cli_checks`) before Ray or torch starts: a mistake is one
line on stderr and exit status 2. Ctrl-C exits 130 with a note on resuming. Messages and
progress go to stderr (``-q`` quiets them, ``-v`` adds debug lines and Ray's own logs);
stdout carries only machine-readable output (``--json``, summaries).
"""

from __future__ import annotations

import argparse
import json
import sys

from raytag import __version__, logs
from raytag.cli_checks import (
    UsageError,
    check_input,
    check_output,
    check_readable_file,
    check_training_data,
    check_weights,
    fraction,
    nonnegative_int,
    positive_float,
    positive_int,
)
from raytag.constants import (
    DEFAULT_LR,
    DEFAULT_TRACKER,
    LOCALISER_VIEW_CHOICES,
    LOCALISER_VIEWS,
    REFINE_PASSES,
    TRACKERS,
)

# retry policies from the run settings, which import no numerical code (``raytag --help``
# stays fast)
from raytag.pipeline.settings import ENGINES, LOCAL_MAX_PARTICIPANTS, RETRY_POLICIES

#: Exit statuses: a usage mistake, and an interrupt (128 + SIGINT).
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def _family(text: str) -> str:
    """argparse type: a generator family or mixture ``a,b`` of known families."""
    from raytag.phantom.families import FAMILIES

    names = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in FAMILIES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown family; known: {', '.join(FAMILIES)} (or a mixture a,b)")
    return ",".join(names)


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))


def _cmd_demo(args: argparse.Namespace) -> int:
    check_output("--out", args.out)
    if args.weights is not None:
        check_weights("--weights", args.weights)
    from raytag.demo import run_demo

    summary = run_demo(args.out, n_participants=args.participants, seed=args.seed,
                       weights=args.weights, family=args.family,
                       echo=logs.log.warning if args.json else logs.echo)
    if args.json:
        _print_json(summary)
    return 0 if summary["duplicate_keys"] == 0 and summary["by_status"].get("ok") else 1


def _cmd_synth(args: argparse.Namespace) -> int:
    from raytag.phantom.cohort import SynthConfig, generate_participant, parse_faults
    from raytag.pipeline.synth import synthesise

    if not args.out and not args.preview:
        raise UsageError("nothing to do: give --out URI and/or --preview PNG")
    if args.out:
        check_output("--out", args.out)
    if args.preview_index >= args.participants:
        raise UsageError(f"--preview-index {args.preview_index}: the cohort has only "
                         f"{args.participants} participants (0-based)")
    try:
        config = SynthConfig(
            n_participants=args.participants, seed=args.seed, n_frames=args.frames,
            impaired_fraction=args.impaired_fraction, faults=parse_faults(args.faults),
            family=args.family,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        summary = synthesise(args.out, config, workers=args.workers)
        print(json.dumps(summary))
    if args.preview:
        from raytag.phantom.preview import render_preview

        gp = generate_participant(args.preview_index, config, keep_images=True)
        path = render_preview(gp.images, args.preview,
                              title=f"raytag synth seed {args.seed}: participant {gp.eid}")
        logs.echo(f"preview: {path}")
    return 0


def _augment_overrides(text: str) -> dict:
    """``"rotate_deg=45,noise=0.1"`` -> ``{"rotate_deg": 45.0, "noise": 0.1}`` (checked)."""
    from raytag.train.augment import AUGMENT_DEFAULTS

    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        if key not in AUGMENT_DEFAULTS:
            raise argparse.ArgumentTypeError(
                f"unknown augmentation {key!r}; known: {', '.join(AUGMENT_DEFAULTS)}")
        try:
            out[key] = type(AUGMENT_DEFAULTS[key])(float(value))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}={value!r} is not a number") from None
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    check_training_data("--data", args.data, args.limit)
    check_output("--out", args.out)
    if "://" not in args.storage:
        check_output("--storage", args.storage)
    if args.init_from:
        if args.init_from.endswith(".pt"):
            check_readable_file("--init-from", args.init_from)
        else:
            check_weights("--init-from", args.init_from)
    from raytag.io import storage
    from raytag.pipeline.cluster import ensure_ray
    from raytag.train.driver import KINDS, clean_run, prepare_datasets, train_network

    kinds = {"both": ("localiser", "tracker"), "all": KINDS}.get(args.kind, (args.kind,))
    ensure_ray(num_cpus=args.cpus)
    datasets = prepare_datasets(args.data, seed=args.seed, limit=args.limit)
    counts = {k: v.count() for k, v in datasets.items()}
    logs.echo(f"raytag train: slices {counts}")
    empty = [k for k in ("train", "val") if not counts[k]]
    if empty:
        raise UsageError(f"--data {args.data}: no usable slices in the {' and '.join(empty)} "
                         "split (too few participants with ok slices)")
    results = []
    for kind in kinds:
        if args.fresh:
            clean_run(args.storage, args.name, kind)
        epochs = args.epochs or {"localiser": 40, "tracker": 60, "ed": 40}[kind]
        lr = args.tracker_lr if kind == "tracker" else args.localiser_lr
        results.append(train_network(
            kind, datasets, args.storage, args.name, preset=args.preset, workers=args.workers,
            epochs=epochs, batch_size=args.batch_size, lr=lr, seed=args.seed,
            use_gpu=args.use_gpu, patience=args.patience, out_dir=args.out,
            augment=args.augment,
            init_from=(storage.join(args.init_from, f"{kind}.pt")
                       if args.init_from and not args.init_from.endswith(".pt")
                       else args.init_from),
            training={"data": args.data, "slices": counts, "preset": args.preset,
                      "workers": args.workers, "epochs": epochs, "lr": lr,
                      "init_from": args.init_from,
                      "command": " ".join(sys.argv)},
        ))
    print(json.dumps([{k: r[k] for k in ("kind", "exported", "seconds")}
                      | {"metrics": r["metrics"]} for r in results], default=str))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if str(args.data).endswith((".h5", ".hdf5")):
        check_readable_file("--data", args.data)
    else:
        check_input("--data", args.data)
    if args.out:
        check_output("--out", args.out)
    predictor = check_weights("--weights", args.weights, args.refine_passes,
                              args.localiser_views)
    from raytag.train.evaluate import evaluate, format_table, labelled_split, write_report

    predictor.tracking = args.tracker
    items = labelled_split(args.data, args.split, args.seed, args.limit)
    if not items:
        raise UsageError(f"--data {args.data}: no ok labelled slices in split {args.split!r}")
    metrics = evaluate(predictor, items)
    if args.out:
        write_report(metrics, args.out)
    if args.json:
        _print_json(metrics)
    else:
        print(format_table(metrics))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    check_input("--input", args.input)
    check_output("--output", args.output)
    if args.weights is not None:
        # a user's folder is loaded once here, so that a bad one fails in one line before
        # Ray starts; the shipped weights are tested with the package, and importing torch
        # in the driver only to load them again in every actor costs ~1.5 s per run
        check_weights("--weights", args.weights, args.refine_passes, args.localiser_views)
    from raytag.pipeline.run import run_cohort
    from raytag.pipeline.settings import RunSettings

    try:
        summary = run_cohort(args.input, args.output, RunSettings(
            weights=args.weights, limit=args.limit, resume=args.resume,
            model_actors=args.model_actors, gpus=args.gpus, rows_per_file=args.rows_per_file,
            flush_seconds=args.flush_seconds, refine_passes=args.refine_passes,
            localiser_views=args.localiser_views, tracker=args.tracker,
            register_frames=args.register_frames, retry_failed=args.retry_failed,
            allow_outside_links=args.allow_outside_links, engine=args.engine),
            dashboard=args.dashboard)
    except (FileExistsError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    logs.log.debug(summary.pop("ds_stats"))
    _print_json(summary)
    return 0 if summary["duplicate_keys"] == 0 else 1


def _cmd_report(args: argparse.Namespace) -> int:
    check_readable_or_folder("--results", args.results)
    if args.reference:
        check_readable_or_folder("--reference", args.reference)
    if args.groups:
        check_readable_file("--groups", args.groups)
    check_output("--out", args.out)
    from raytag.analysis.report import build_report

    try:
        written = build_report(args.results, args.out, reference_uri=args.reference,
                               groups_uri=args.groups, max_cases=args.max_cases,
                               title=args.title)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        _print_json({"html": written["html"], "json": written["json"], "csv": written["csv"],
                     "meta": written["meta"]})
    return 0


def check_readable_or_folder(option: str, uri: str) -> None:
    """A results folder or a single Parquet file that exists (remote URIs pass)."""
    import os

    if "://" in str(uri) and not str(uri).startswith("file://"):
        return
    if not os.path.exists(str(uri).removeprefix("file://")):
        raise UsageError(f"{option} {uri}: no such file or folder")


def _cmd_export(args: argparse.Namespace) -> int:
    check_readable_or_folder("--results", args.results)
    if not str(args.out).endswith((".csv", ".parquet")):
        raise UsageError(f"--out {args.out}: the name must end in .csv or .parquet")
    import os

    parent = os.path.dirname(os.path.abspath(args.out)) if "://" not in args.out else None
    if parent:
        check_output("--out (its folder)", parent)
    from raytag.analysis.export import write_export

    try:
        summary = write_export(args.results, args.out, percent=args.percent)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    logs.echo(f"raytag export: {summary['participants']} participant visits -> {args.out}")
    if args.json:
        _print_json(summary)
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    check_input("--input", args.input)
    if not str(args.out).endswith(".parquet"):
        raise UsageError(f"--out {args.out}: a manifest's name must end in .parquet")
    from raytag.pipeline.run import build_index

    n = build_index(args.input, args.out)
    logs.echo(f"raytag index: {n} participant zips -> {args.out}")
    if args.json:
        _print_json({"out": args.out, "participants": n})
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    """Print what the ingest makes of participant zips: one line (or JSON object) per slice."""
    from raytag.io import read_participant

    worst = 0
    for uri in args.sources:
        for rec in read_participant(uri):
            worst = max(worst, 0 if rec.ok else 1)
            if args.json:
                print(json.dumps({
                    "source": uri, "eid": rec.eid, "instance": rec.instance,
                    "slice_index": rec.slice_index, "slice_label": rec.slice_label,
                    "status": rec.status, "error": rec.error, "qc_flags": rec.qc_flags,
                    "n_frames": rec.n_frames, "shape": rec.shape,
                    "pixel_spacing_mm": None if rec.pixel_spacing_mm is None
                    else rec.pixel_spacing_mm.tolist(),
                    "n_candidate_series": rec.n_candidate_series,
                }))
            else:
                print(rec)
    return worst


class _Formatter(argparse.HelpFormatter):
    """Help with every option's default (unless its help already names it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower() or action.default in (
                None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit 2 (argparse prints usage plus the error)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes: verbosity."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail: debug lines and Ray's own logs (-vv: even more)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="only warnings and errors on stderr (no progress)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="raytag", formatter_class=_Formatter,
        description="Fully automated myocardial strain from tagged cardiac MRI, at cohort scale.",
    )
    parser.add_argument("--version", action="version", version=f"raytag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = [_common()]

    def add(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=common, formatter_class=_Formatter, **kw)

    demo = add(
        "demo",
        help="run a small synthetic cohort end to end on this machine",
        description="Synthesise UK Biobank-style zips with a few faults, run the Ray "
        "pipeline on a local Ray, write the results table (Parquet) and print a summary "
        "with throughput and agreement with the generator's truth.",
    )
    demo.add_argument("--out", default="raytag-demo", help="output folder or s3:// prefix")
    demo.add_argument("--participants", type=positive_int, default=24,
                      help="synthetic participants")
    demo.add_argument("--weights", default=None,
                      help="weights folder (localiser.pt, tracker.pt, optional ed.pt; "
                      "default: the shipped weights)")
    demo.add_argument("--seed", type=int, default=0, help="the cohort's random seed")
    demo.add_argument("--family", type=_family, default="thorax",
                      help="generator family of the cohort: disc, thorax, patchwork or a "
                      "mixture a,b (default thorax)")
    demo.add_argument("--json", action="store_true",
                      help="print the summary as one JSON object on stdout")
    demo.set_defaults(func=_cmd_demo)

    synth = add(
        "synth",
        help="write a synthetic UK Biobank-style tagging cohort with exact truth",
        description="Physics-based synthetic tagged cines as <eid>_20211_2_0.zip files plus "
        "truth.parquet (landmarks, ROI boxes, strains, parameters), deterministic per seed.",
    )
    synth.add_argument("--participants", type=positive_int, default=20,
                       help="participants to generate")
    synth.add_argument("--out", help="output folder or s3:// prefix")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    synth.add_argument("--family", type=_family, default="disc",
                       help="generator family: disc, thorax or patchwork, or a mixture "
                       "such as thorax,patchwork (default: disc)")
    synth.add_argument("--frames", type=positive_int, default=None,
                       help="frames per cine (default: the family's; disc 20, others 15-30)")
    synth.add_argument("--impaired-fraction", type=fraction, default=0.2,
                       help="share of participants in the 'impaired' group")
    synth.add_argument("--faults", default="",
                       help="fault rates, e.g. missing_slice=0.05,corrupt_zip=0.02 (known: "
                       "missing_slice, truncated_file, duplicate_series, fewer_frames, "
                       "corrupt_zip; default none)")
    synth.add_argument("--workers", type=positive_int, default=None,
                       help="parallel Ray tasks (default: all cores; 1 = no Ray)")
    synth.add_argument("--preview", metavar="PNG",
                       help="draw ED/ES/late-diastole frames with truth landmarks")
    synth.add_argument("--preview-index", type=nonnegative_int, default=0,
                       help="which participant to preview (0-based)")
    synth.set_defaults(func=_cmd_synth)

    train = add(
        "train", help="train the networks with Ray Train (DDP)",
        description="Preprocess a labelled cohort with Ray Data and train with Ray Train. "
        "Rerunning the same --name/--storage resumes from the latest checkpoint.")
    train.add_argument("--data", required=True,
                       help="raytag synth cohort (folder or s3://) or study HDF5 file")
    train.add_argument("--kind", choices=("both", "all", "localiser", "tracker", "ed"),
                       default="both",
                       help="network(s) to train: both = localiser and tracker, all = also "
                       "the ED-geometry network (default both)")
    train.add_argument("--preset", default="lite", help="network size preset")
    train.add_argument("--workers", type=positive_int, default=2,
                       help="DDP workers (1 CPU/GPU each)")
    train.add_argument("--cpus", type=positive_int, default=None,
                       help="CPUs for a local Ray (default: all)")
    train.add_argument("--use-gpu", action="store_true", help="one GPU per worker")
    train.add_argument("--epochs", type=positive_int, default=None,
                       help="default 40 (localiser, ED network) / 60 (tracker)")
    train.add_argument("--batch-size", type=positive_int, default=8, help="per worker")
    train.add_argument("--localiser-lr", type=positive_float, default=DEFAULT_LR["localiser"],
                       help="learning rate of the localiser and the ED network")
    train.add_argument("--tracker-lr", type=positive_float, default=DEFAULT_LR["tracker"],
                       help="learning rate of the tracker")
    train.add_argument("--patience", type=positive_int, default=None,
                       help="early stopping: epochs without validation improvement "
                       "(default: none)")
    train.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    train.add_argument("--limit", type=positive_int, default=None,
                       help="use the first N participants (default: all)")
    train.add_argument("--name", default="raytag", help="run name (resume key)")
    train.add_argument("--storage", default="raytag-runs", help="Ray Train storage path")
    train.add_argument("--out", default="raytag-models", help="where <kind>.pt is exported")
    train.add_argument("--fresh", action="store_true", help="delete the run and start over")
    train.add_argument("--init-from", default=None,
                       help="weights folder (or .pt file) to start from: fine-tuning")
    train.add_argument("--augment", type=_augment_overrides, default=None,
                       help="augmentation overrides, e.g. rotate_deg=45,noise=0.1 (keys of "
                       "raytag.train.augment.AUGMENT_DEFAULTS; default: none)")
    train.set_defaults(func=_cmd_train)

    ev = add("evaluate", help="metrics of a weights folder on labelled data",
             description="End-to-end predictor vs truth: IoU, RMSE, ES strain.")
    ev.add_argument("--weights", default=None,
                    help="weights folder (default: the shipped weights)")
    ev.add_argument("--tracker", choices=TRACKERS, default=DEFAULT_TRACKER,
                    help=f"what moves the landmarks after the networks (default "
                    f"{DEFAULT_TRACKER})")
    ev.add_argument("--data", required=True,
                    help="labelled cohort: raytag synth folder or study HDF5 file")
    ev.add_argument("--split", default="all", choices=("all", "train", "val", "test"),
                    help="which participants (the training split with --seed)")
    ev.add_argument("--seed", type=int, default=0, help="the training split seed")
    ev.add_argument("--limit", type=positive_int, default=None,
                    help="first N participants (default: all)")
    ev.add_argument("--refine-passes", type=nonnegative_int, default=REFINE_PASSES,
                    help="tracker passes on the box re-fitted to the tracked ED landmarks "
                    f"(default {REFINE_PASSES}; 0 = the paper's single pass)")
    ev.add_argument("--localiser-views", type=int, choices=LOCALISER_VIEW_CHOICES,
                    default=LOCALISER_VIEWS,
                    help="views of the input the centre localiser agrees on (8: every "
                    f"90-degree rotation and mirror; default {LOCALISER_VIEWS})")
    ev.add_argument("--out", default=None, help="folder for metrics.json and metrics.md")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.set_defaults(func=_cmd_evaluate)

    run = add(
        "run", help="process a cohort of zips into the results table (Ray Data)",
        description="Stream participant zips (folder, s3:// prefix or manifest .parquet) "
        "through decode -> networks -> strain and write Parquet. Rerunning completes an "
        "interrupted run exactly once.")
    run.add_argument("--input", required=True,
                     help="participant zips: a folder or s3:// prefix (searched recursively), "
                     "one .zip, or a manifest .parquet from raytag index")
    run.add_argument("--output", required=True,
                     help="output folder or s3:// prefix (results in <output>/results)")
    run.add_argument("--weights", default=None,
                     help="weights folder (default: the shipped weights)")
    run.add_argument("--limit", type=positive_int, default=None,
                     help="first N participants only (default: all)")
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="skip participants already in the output (default); "
                     "--no-resume refuses an output that already has results")
    run.add_argument("--model-actors", type=positive_int, default=None,
                     help="model actor pool size (default: one per GPU the cluster has or "
                     "can start; without GPUs one per CPU, each asking for half a CPU)")
    run.add_argument("--gpus", type=positive_int, default=None,
                     help="GPUs to ask for (one model actor each), also on a cluster that "
                     "has no GPU node yet: its autoscaler starts them (default: what the "
                     "cluster has or can start)")
    run.add_argument("--tracker", choices=TRACKERS, default=DEFAULT_TRACKER,
                     help=f"what moves the landmarks after the networks (default "
                     f"{DEFAULT_TRACKER})")
    run.add_argument("--register-frames", action=argparse.BooleanOptionalAction, default=True,
                     help="refine HARP's track by registering the raw frames (default); "
                     "--no-register-frames: the phase field alone, about twice as fast "
                     "tracking but less accurate (docs/tracking.md), model_version says "
                     "register=off")
    run.add_argument("--retry-failed", choices=RETRY_POLICIES, default="transient",
                     help="committed failures to process again: transient ones (storage "
                     "errors; default), all, or none")
    run.add_argument("--allow-outside-links", action="store_true",
                     help="read symlinks that point outside the input folder (refused by "
                     "default)")
    run.add_argument("--rows-per-file", type=positive_int, default=3000,
                     help="slice rows per committed results file (default 3000)")
    run.add_argument("--flush-seconds", type=positive_float, default=60.0,
                     help="commit what is ready at least this often (default 60)")
    run.add_argument("--refine-passes", type=nonnegative_int, default=REFINE_PASSES,
                     help="tracker passes on the box re-fitted to the tracked ED landmarks "
                     f"(default {REFINE_PASSES}; 0 = the paper's single pass, twice as fast)")
    run.add_argument("--localiser-views", type=int, choices=LOCALISER_VIEW_CHOICES,
                     default=LOCALISER_VIEWS,
                     help="views of the input the centre localiser agrees on (8: every "
                     f"90-degree rotation and mirror, 8 localiser forwards; default "
                     f"{LOCALISER_VIEWS})")
    run.add_argument("--dashboard", action="store_true",
                     help="start a local Ray with its dashboard and print the URL")
    run.add_argument("--engine", choices=ENGINES, default="auto",
                     help="ray: Ray Data (a cluster's, or a local Ray); local: the same "
                     "stages in this process; auto (default): ray on a cluster "
                     "(RAY_ADDRESS) or with --dashboard/--gpus/--model-actors, else local "
                     f"for jobs of at most {LOCAL_MAX_PARTICIPANTS} participants, where "
                     "Ray's ~10 s start-up costs more than it brings")
    run.set_defaults(func=_cmd_run)

    report = add(
        "report", help="the study's tables and figures (HTML + CSV + JSON) from results",
        description="Table 2 agreement, Bland-Altman, landmark RMSE and ROI IoU against a "
        "reference (generator truth or manual analysis), Table 3 group differences from a "
        "groups CSV, QC of the worst cases; distributions and outliers without a reference.")
    report.add_argument("--results", required=True,
                        help="output folder of raytag run, its results/ folder, or a Parquet "
                        "file")
    report.add_argument("--reference", default=None,
                        help="reference table (e.g. a synthetic cohort's truth.parquet)")
    report.add_argument("--groups", default=None,
                        help="CSV: eid plus one 0/1 column per group flag (Table 3)")
    report.add_argument("--out", required=True, help="output folder or s3:// prefix")
    report.add_argument("--max-cases", type=nonnegative_int, default=12,
                        help="QC cases drawn with their frames (default 12)")
    report.add_argument("--title", default=None, help="the page's title")
    report.add_argument("--json", action="store_true",
                        help="print where everything was written, and the counts, as JSON")
    report.set_defaults(func=_cmd_report)

    export = add(
        "export", help="one row per participant visit (CSV or Parquet) for analysts",
        description="A wide table from a results folder: per region its status, failure "
        "reason, QC flags and the five ES strains, side by side (see "
        "raytag.analysis.export).")
    export.add_argument("--results", required=True,
                        help="output folder of raytag run, its results/ folder, or a Parquet "
                        "file")
    export.add_argument("--out", required=True, help="file ending in .csv or .parquet")
    export.add_argument("--percent", action="store_true",
                        help="strains in percent (columns named *_pct) instead of fractions")
    export.add_argument("--json", action="store_true", help="print a summary as JSON")
    export.set_defaults(func=_cmd_export)

    index = add("index", help="write a manifest table of a cohort's zips",
                description="List zips once (uri, eid, instance, size, mtime) so a large "
                "cohort run does not depend on listing at start-up.")
    index.add_argument("--input", required=True, help="folder or s3:// prefix of zips")
    index.add_argument("--out", required=True, help="manifest .parquet (path or s3://)")
    index.add_argument("--json", action="store_true", help="print a summary as JSON")
    index.set_defaults(func=_cmd_index)

    inspect = add(
        "inspect",
        help="read participant zips and show their slices, QC flags and failures",
        description="Run the UK Biobank tagging ingest on zips (paths or s3:// URIs). "
        "Exit status 1 if any slice failed.",
    )
    inspect.add_argument("sources", nargs="+", metavar="ZIP")
    inspect.add_argument("--json", action="store_true", help="one JSON object per slice")
    inspect.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    logs.configure(-1 if args.quiet else args.verbose)
    prog = f"raytag {args.command}"
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted: run the same command again to resume "
              "(finished work is kept)", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
