"""The ``facebench`` command line.

Bad input of any kind (a protocol key, a dataset, a predictions file, a flag) ends with one sentence on
stderr and exit code 2; argparse's own usage errors use exit code 2 as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facebench.errors import EXIT_BAD_INPUT, UserInputError, bounded_message, shorten

DESCRIPTION = """\
facebench: is this face model equally good for everyone?

Runs declarative benchmark protocols (YAML) that train or load face models and report every metric
per demographic group (race, gender, age band and their intersections) with sample sizes, bootstrap
intervals and worst-vs-best gaps, in results.json files and self-contained HTML bias reports.

Without --data-root every protocol runs on facebench's synthetic faces, written in the real dataset's
on-disk format; results on synthetic data are labelled SYNTHETIC everywhere.
"""

EPILOG = """\
examples:
  facebench protocols list                                             # the built-in protocols' names
  facebench run age_utk_cross_ethnicity                                # quick profile, synthetic faces
  facebench run age_utk_cross_ethnicity --data-root ~/data/utkface --profile paper
  facebench run my_protocols/variant.yaml                              # a protocol file of your own
  facebench evaluate age_utk_cross_ethnicity --predictions mine.csv --name my-model
  facebench evaluate aifr_morph --model docs/examples/torchvision_adapter.py:factory
  facebench run aifr_fgnet --data-root ~/data/fgnet --train-data-root ~/data/cacd
  facebench sweep age_utk_dann_gamma --seeds 3 --grid training.lr=0.001,0.002   # 24 jobs, local
  facebench leaderboard runs/ --out site/
  facebench compare runs/aifr_morph/submission-mine --leaderboard site/ --gate gates.yaml
  facebench protocols validate                                         # every built-in protocol
  facebench data verify utkface --root ~/data/utkface --json
  facebench study export runs/study/manifest.csv --out study.html --pairs 300      # a 2AFC rating page
  facebench study import study.key.json ratings-*.csv --out study-results/
"""


def _add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", type=Path,
                        help="a built-in protocol's name (e.g. age_utk_cross_ethnicity; see `facebench protocols list`) "
                             "or the path of a protocol YAML file")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--synthetic", action="store_true",
                      help="use the embedded synthetic stand-in for the dataset (the default without --data-root)")
    data.add_argument("--data-root", type=Path, metavar="DIR", help="root of your copy of the real dataset")
    parser.add_argument("--profile", help="protocol profile: 'quick' (CPU minutes, the default) or 'paper' (published setting)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a protocol setting, e.g. --set training.epochs=3 (repeatable; value parsed as YAML)")
    parser.add_argument("--out", type=output_folder, default=Path("runs"), metavar="DIR", help="output folder (default: runs/)")
    parser.add_argument("--seed", type=int, default=0, help="seed for training and bootstrap intervals (default 0)")
    parser.add_argument("--cache-dir", type=output_folder, metavar="DIR",
                        help="where synthetic data and decoded images are cached (default $FACEBENCH_CACHE or ~/.cache/facebench)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def output_folder(text: str) -> Path:
    """An argparse type for a folder facebench writes into: refused (exit 2, one sentence) when it names a file."""
    path = Path(text)
    try:
        is_other = path.exists() and not path.is_dir()
    except OSError:  # a name the system refuses to look up
        raise argparse.ArgumentTypeError(f"{shorten(text, 120)} cannot be used as a folder") from None
    if is_other:
        raise argparse.ArgumentTypeError(f"{shorten(text, 120)} is a file, not a folder")
    return path


def _count(minimum: int):
    """An argparse type for a whole number of at least ``minimum`` (refused in one sentence, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shorten(text, 40)} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with its error sentence bounded: it quotes the offending argument, which may be huge."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {bounded_message(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facebench", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facebench {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train/load the protocol's baselines, score them, write results and a report",
                              description="Run every baseline of a protocol and write OUT/<protocol>/<baseline>-<hash>/"
                              "results.json plus OUT/<protocol>/report.html. Re-running resumes a killed run from its "
                              "last epoch checkpoint and skips finished ones.")
    _add_protocol_arguments(run)
    run.add_argument("--baseline", action="append", default=[], metavar="NAME", help="run only this baseline (repeatable)")
    run.add_argument("--train-data-root", type=Path, metavar="DIR",
                     help="your copy of the protocol's train_dataset, for protocols that train on another dataset than "
                          "they test on (FG-NET, AgeDB-30, CACD-VS); default: --data-root when it is the same dataset")
    run.add_argument("--restart", action="store_true",
                     help="train unfinished runs from scratch: delete their checkpoint (checkpoints/last.pt) instead of "
                          "resuming it, e.g. when it is refused as truncated or foreign (finished runs are still skipped)")
    run.set_defaults(handler=_cmd_run)

    evaluate = commands.add_parser("evaluate", help="score a predictions file, or your own model, exactly as a baseline is scored",
                                   description="Validate and score a submission for a protocol's test split: a predictions "
                                   "file (--predictions) or a model (--model). Age protocols take a CSV with header "
                                   "sample_id,age; face-recognition protocols an .npz with arrays sample_id and embedding "
                                   "(sample_id = image path relative to the dataset root; --list-ids prints them). "
                                   "--model package.module:factory (or path/to/file.py:factory) is called as "
                                   "factory(task=NAME, image_size=S) and must return model(batch) -> ages (N,) or "
                                   "embeddings (N, D), batch being float32 (N, 3, S, S) RGB in [0, 1] on the GPU when "
                                   "present; its outputs are scored exactly like a predictions file "
                                   "(docs/submissions.md). Writes OUT/<protocol>/submission-<name>/ and refreshes the "
                                   "report; a bad submission writes nothing.")
    _add_protocol_arguments(evaluate)
    submission = evaluate.add_mutually_exclusive_group()
    submission.add_argument("--predictions", type=Path, metavar="FILE",
                            help="the predictions file (this, --model or --list-ids is required)")
    submission.add_argument("--model", metavar="MODULE:FACTORY",
                            help="your model's factory: package.module:factory or path/to/file.py:factory")
    evaluate.add_argument("--name", default=None,
                          help="name of the submission (default: the predictions file's stem, or the factory's name)")
    evaluate.add_argument("--list-ids", action="store_true", help="print the test split's sample ids (one per line) and exit")
    evaluate.set_defaults(handler=_cmd_evaluate)

    protocols = commands.add_parser("protocols", help="list or validate protocol files")
    protocol_commands = protocols.add_subparsers(dest="protocols_command", required=True, metavar="ACTION")
    listing = protocol_commands.add_parser(
        "list", help="list the built-in protocols (the names `facebench run NAME` takes)",
        description="List the protocols installed with facebench: name, title, task and profiles (one name per line "
                    "when the output is not a terminal).")
    listing.set_defaults(handler=_cmd_protocols_list)
    validate = protocol_commands.add_parser("validate", help="validate protocol files with every profile applied")
    validate.add_argument("files", nargs="*", type=Path, metavar="PROTOCOL",
                          help="protocol names or YAML files (default: every built-in protocol)")
    validate.set_defaults(handler=_cmd_protocols_validate)

    from facebench.registry import DATASETS  # names only: nothing is imported before a command runs

    known_datasets = ", ".join(DATASETS.names())
    data = commands.add_parser("data", help="synthesise or verify datasets in their real on-disk formats")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    synth = data_commands.add_parser("synth", help="write synthetic faces in a dataset's exact on-disk format")
    synth.add_argument("dataset", help=f"the dataset: {known_datasets} (plugins add more)")
    synth.add_argument("--out", type=output_folder, required=True, metavar="DIR", help="folder to create (DIR/UTKFace/... etc.)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--n", type=int, default=6000,
                       help="number of images for utkface, of people for the longitudinal datasets and celeba, of one-image "
                            "people for fairface (default 6000)")
    synth.add_argument("--size", type=int, default=200, help="image side in pixels (default 200, as UTKFace; CelebA's height, its width kept at 178:218)")
    synth.set_defaults(handler=_cmd_data_synth)
    verify = data_commands.add_parser(
        "verify", help="parse a dataset copy strictly and decode every image; print counts per group and rejects",
        description="Read a dataset copy as `run` does: parse its names and label files strictly, then open every "
                    "accepted image (header, size limit, a full decode; in parallel, cached per file version). Every "
                    "rejected file is listed with its reason (malformed name, zero-byte, truncated, not an image, too "
                    "large, dangling link...); `run` leaves the same files out. Exit 0 whatever is rejected; 2 when "
                    "nothing is left.")
    verify.add_argument("dataset", help=f"the dataset: {known_datasets} (plugins add more)")
    verify.add_argument("--root", type=Path, required=True, metavar="DIR",
                        help="dataset root (the folder holding UTKFace/, MORPH_nonCommercial/, CACD2000/, FGNET/, AgeDB/, "
                             "CelebA's Img/ Anno/ Eval/, or FairFace's train/ val/ and label files)")
    verify.add_argument("--variant", default=None,
                        help="utkface: aligned (default), in_the_wild or crop_part1; morph: album2; cacd: metadata or names; "
                             "fgnet and agedb: images; celeba: aligned; fairface: trainval (default), train or val")
    verify.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="a reader option (repeatable; value parsed as YAML), e.g. for celeba "
                             "--option race_annotations=FILE --option 'race_categories=[white, non_white]'")
    verify.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    verify.add_argument("--cache-dir", type=output_folder, metavar="DIR",
                        help="where each image's verdict and content hash are cached, so that only new or changed "
                             "images are decoded again (default $FACEBENCH_CACHE or ~/.cache/facebench)")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(handler=_cmd_data_verify)

    sweep = commands.add_parser(
        "sweep", help="run a protocol over a grid of settings and seeds as submitit jobs, locally or on SLURM",
        description="Run PROTOCOL at every point of the --grid (each point a set of --set overrides) with --seeds "
                    "seeds, one submitit job per baseline, seed and point: the run folders `facebench run` writes "
                    "(OUT/<protocol>/<baseline>-<hash>/). Finished jobs are skipped, so running the same command "
                    "again submits nothing; failed ones are listed with their log and submitted again with "
                    "--retry-failed. The sweep's manifest.json, summary.md, summary.csv and runs.csv are in "
                    "OUT/_sweeps/<protocol>-<hash>/: per grid point, the mean over seeds with a t interval over "
                    "seeds beside each run's bootstrap interval. Exit 1 when a job failed.")
    _add_protocol_arguments(sweep)
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                       help="a protocol setting and its values (repeatable: the grid is every combination); values "
                            "are read as --set reads them, commas inside [...] stay in one value, e.g. --grid "
                            "training.lr=0.001,0.002 --grid 'baselines.0.params.layers=[conv, fc1],[fc1]'")
    sweep.add_argument("--seeds", type=_count(1), metavar="N",
                       help="seeds --seed ... --seed + N - 1 (default: the protocol's repeats, else 1)")
    sweep.add_argument("--baseline", action="append", default=[], metavar="NAME", help="only this baseline (repeatable)")
    sweep.add_argument("--train-data-root", type=Path, metavar="DIR", help="as for `facebench run`")
    sweep.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: submitit's LocalExecutor on this machine (default); slurm: one SLURM job array")
    sweep.add_argument("--local-parallelism", type=_count(1), metavar="K", help="local: jobs at a time (default 1)")
    sweep.add_argument("--retry-failed", action="store_true", help="submit failed jobs again")
    sweep.add_argument("--no-wait", action="store_true",
                       help="slurm: return once the jobs are submitted; the same command later collects them")
    sweep.add_argument("--dry-run", action="store_true", help="list the jobs and their run folders; submit nothing")
    slurm = sweep.add_argument_group("SLURM (--launcher slurm)")
    slurm.add_argument("--slurm-partition", metavar="NAME")
    slurm.add_argument("--slurm-gpus-per-job", type=_count(0), metavar="N", help="default 1")
    slurm.add_argument("--slurm-cpus-per-job", type=_count(1), metavar="N")
    slurm.add_argument("--slurm-mem-gb", type=_count(1), metavar="GB")
    slurm.add_argument("--slurm-time", type=_count(1), metavar="MINUTES", help="time limit per job (default 240)")
    slurm.add_argument("--slurm-array-parallelism", type=_count(1), metavar="N",
                       help="jobs of the array running at once (default 64)")
    slurm.add_argument("--slurm-account", metavar="NAME")
    sweep.set_defaults(handler=_cmd_sweep)

    report = commands.add_parser("report", help="(re)build the HTML bias report of a protocol's run folder")
    report.add_argument("folder", type=Path, help="OUT/<protocol> folder holding run directories")
    report.add_argument("--show-real-faces", action="store_true", help="include the generated-face sample grids of runs "
                        "on real datasets (face_generation protocols; without it a report shows synthetic faces only)")
    report.set_defaults(handler=_cmd_report)

    leaderboard = commands.add_parser(
        "leaderboard", help="build a static, offline leaderboard site from run folders",
        description="Collect every results.json under the given folders (baselines and scored submissions) and write a "
                    "self-contained static site: an index of protocols, a sortable table per protocol (primary metric, "
                    "worst group, largest gap with its interval, published reference numbers) and a bias report per run.")
    leaderboard.add_argument("runs", nargs="+", type=Path, metavar="RUNS_DIR",
                             help="folders holding run directories (e.g. runs/ or runs/aifr_morph), searched recursively")
    leaderboard.add_argument("--out", type=output_folder, required=True, metavar="SITE", help="folder to write the site to")
    leaderboard.set_defaults(handler=_cmd_leaderboard)

    compare = commands.add_parser(
        "compare", help="compare a run with a leaderboard: paired bootstrap, fairness gates, exit 0/1/2",
        description="Compare RESULTS (a results.json or its run folder) with a leaderboard entry scored on the same data. "
                    "Exit 0: no significant regression and every gate holds; 1: a significant regression or a broken gate; "
                    "2: bad input, or results that cannot be compared (different data or protocol version). "
                    "Prints a markdown summary fit for a pull-request comment.")
    compare.add_argument("results", type=Path, help="results.json of the candidate run (or its run folder)")
    compare.add_argument("--leaderboard", type=Path, required=True, metavar="SITE_OR_DIR",
                         help="a site built by `facebench leaderboard` or a folder of run directories")
    compare.add_argument("--against", metavar="NAME", help="the entry to compare with (default: the best on the primary metric)")
    compare.add_argument("--gate", type=Path, metavar="GATES.yaml", help="fairness gates, e.g. max_gap: {metric: mae, attribute: race, value: 2.0}")
    compare.add_argument("--markdown", type=Path, metavar="FILE", help="also write the markdown summary to FILE")
    compare.add_argument("--n-boot", type=int, default=2000, help="paired bootstrap resamples (default 2000)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap (default 0)")
    compare.set_defaults(handler=_cmd_compare)
    _add_study_commands(commands)
    return parser


def _add_study_commands(commands) -> None:
    study = commands.add_parser("study", help="human 2AFC realism studies: export a blinded rating page, import ratings")
    study_commands = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    export = study_commands.add_parser(
        "export", help="write a blinded, offline HTML rating page of image pairs and its key file",
        description="Read a study manifest (CSV image,domain,group,source_id; images relative to its folder, two "
                    "domains) and write PAGE.html: pairs of one image of each domain within a group, in a seeded random "
                    "order and on seeded random sides, answered with F/J or the arrow keys, the answers downloaded as "
                    "a CSV. Which side shows which domain is only in PAGE.key.json, written beside it: keep it; send "
                    "raters only the page.")
    export.add_argument("manifest", type=Path, help="the study manifest CSV")
    export.add_argument("--out", type=Path, required=True, metavar="PAGE.html", help="the rating page to write")
    export.add_argument("--pairs", type=int, metavar="N", help="number of pairs, split equally between the groups "
                        "(default: every pair each group can give)")
    export.add_argument("--seed", type=int, default=0, help="seed of the pairing, order and sides (default 0)")
    export.add_argument("--question", default=None, help="the question shown with every pair")
    export.add_argument("--group-attribute", default="group", metavar="NAME",
                        help="what the manifest's groups are, e.g. gender (the results' row label; default: group)")
    export.add_argument("--synthetic", action="store_true", default=None,
                        help="mark the images as synthetic (default: when SYNTHETIC.json lies beside the manifest)")
    export.set_defaults(handler=_cmd_study_export)
    imports = study_commands.add_parser(
        "import", help="unblind ratings CSVs with the key: preference rates per domain and group, agreement",
        description="Read one or more ratings CSVs downloaded from a rating page (strictly: a bad row is one sentence "
                    "and nothing is written), unblind them with the page's key and write DIR/study.json, study.md and "
                    "study.html: preference rates per domain, overall and per group, with Wilson and rater-bootstrap "
                    "intervals, the gap between groups, and Cohen's/Fleiss' kappa between raters.")
    imports.add_argument("key", type=Path, metavar="KEY", help="the page's key file (PAGE.key.json)")
    imports.add_argument("ratings", nargs="+", type=Path, metavar="RATINGS.csv", help="ratings files")
    imports.add_argument("--out", type=output_folder, required=True, metavar="DIR", help="folder to write the results to")
    imports.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    imports.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    imports.set_defaults(handler=_cmd_study_import)


def _version() -> str:
    import facebench

    return facebench.__version__


def _load(args):
    from facebench.protocol import load_protocol

    if args.data_root is not None and not args.data_root.is_dir():
        raise UserInputError(f"--data-root {args.data_root} is not a folder.")
    return load_protocol(args.protocol, profile=args.profile, overrides=tuple(args.overrides))


def _cmd_run(args) -> int:
    from facebench.reports.bias_report import write_protocol_report
    from facebench.run import RunOptions, run_protocol

    protocol = _load(args)
    for name in args.baseline:
        if name not in {b.name for b in protocol.baselines} | {b.display_name for b in protocol.baselines}:
            from facebench.errors import did_you_mean

            known = [b.display_name for b in protocol.baselines]
            raise UserInputError(f"--baseline {name}: not a baseline of {args.protocol}{did_you_mean(name, known)}; it has {', '.join(known)}.")
    options = RunOptions(out_dir=args.out, seed=args.seed, data_root=args.data_root, cache_dir=args.cache_dir,
                         progress=not args.no_progress, baselines=tuple(args.baseline),
                         train_data_root=args.train_data_root, restart=args.restart)
    from facebench.distributed import is_main, session

    with session(device=protocol.training.device):  # torchrun's process group (nothing for a plain process)
        run_dirs = run_protocol(protocol, options)
        if not is_main():  # rank 0 writes the report and says where everything is
            return 0
        report = write_protocol_report(run_dirs[0].parent)
    print(f"results: {', '.join(str(d / 'results.json') for d in run_dirs)}")
    print(f"report:  {report}")
    return 0


def _cmd_evaluate(args) -> int:
    from facebench.adapters import evaluate_model, load_model, score_submission
    from facebench.data.datasets import default_cache_dir
    from facebench.registry import TASKS
    from facebench.reports.bias_report import write_protocol_report
    from facebench.run import prepare_data

    protocol = _load(args)
    if not args.list_ids and args.predictions is None and args.model is None:
        raise UserInputError("evaluate needs --predictions FILE or --model MODULE:FACTORY "
                             "(or --list-ids to print the ids to predict).")
    model = None
    if args.model is not None and not args.list_ids:  # a bad spec fails before any data is prepared
        model = load_model(args.model, task=TASKS.get(protocol.task), image_size=protocol.model.image_size)
    cache_dir = args.cache_dir or default_cache_dir()
    dataset, split = prepare_data(protocol, data_root=args.data_root, cache_dir=cache_dir, progress=not args.no_progress)
    if args.list_ids:
        sys.stdout.write("".join(f"{sample_id}\n" for sample_id in split["test"]))
        return 0
    if model is not None:
        run_dir = evaluate_model(model, protocol=protocol, dataset=dataset, split=split, cache_dir=cache_dir,
                                 out=args.out, seed=args.seed, name=args.name, progress=not args.no_progress)
    else:
        run_dir = score_submission(protocol=protocol, dataset=dataset, split=split, predictions=args.predictions,
                                   out=args.out, name=args.name or args.predictions.stem, source=str(args.predictions),
                                   seed=args.seed, cache_dir=cache_dir)
    report = write_protocol_report(run_dir.parent)
    print(f"results: {run_dir / 'results.json'}")
    print(f"report:  {report}")
    return 0


def _cmd_protocols_list(args) -> int:
    from rich.table import Table

    from facebench.progress import console
    from facebench.protocol import builtin_protocols, profile_names, read_protocol_file

    paths = builtin_protocols()
    if not console.is_terminal:
        for path in paths:
            print(path.stem)
        return 0
    table = Table("name", "title", "task", "profiles")
    for path in paths:
        raw = read_protocol_file(path)
        table.add_row(path.stem, str(raw.get("title", "")), str(raw.get("task", "")), ", ".join(profile_names(raw)))
    console.print(table)
    return 0


def _cmd_protocols_validate(args) -> int:
    from facebench.protocol import builtin_protocols, validate_all_profiles

    files = args.files or builtin_protocols()
    if not files:
        raise UserInputError("No built-in protocols were found, so there is nothing to validate; name protocol files.")
    for path in files:
        protocols = validate_all_profiles(path)
        print(f"{path if args.files else path.stem}: ok ({', '.join(p.profile for p in protocols)})")
    return 0


def _cmd_data_synth(args) -> int:
    from facebench.registry import DATASETS

    spec = DATASETS.get(args.dataset, where="facebench data synth")
    settings = spec.synthetic_settings(n=args.n, seed=args.seed, image_size=args.size,
                                       what=f"facebench data synth {spec.name}")
    out = spec.write(args.out, settings, progress=True)
    print(f"wrote synthetic {spec.name} ({args.n} {spec.size_unit}) to {out} (SYNTHETIC.json marks the folder)")
    return 0


def _cmd_data_verify(args) -> int:
    from facebench.data.datasets import read_checked
    from facebench.registry import DATASETS

    spec = DATASETS.get(args.dataset, where="facebench data verify")
    checked = read_checked(spec, args.root, variant=args.variant or spec.default_variant, cache_dir=args.cache_dir,
                           progress=not args.no_progress, options=_reader_options(args.options))
    summary = spec.verify_summary(checked.result)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['dataset']} at {summary['root']}: {summary['n_samples']} images accepted, {summary['n_rejected']} rejected")
    for attribute, counts in summary["groups"].items():
        print(f"  {attribute}: " + ", ".join(f"{group} {count}" for group, count in counts.items()))
    for reject in summary["rejected"]:
        print(f"  rejected {reject['sample_id']}: {reject['reason']}")
    for conflict in summary.get("conflicts", []):
        print(f"  conflict {conflict['sample_id']}: {conflict['reason']} (the CSV wins)")
    if "annotations" in summary:
        print(f"  annotations {summary['annotations']['file']}: {summary['annotations']['agreement_line']}")
    return 0


def _reader_options(items: list[str]) -> dict:
    """``--option key=value`` items as a dict (values parsed as YAML, as ``--set`` values are)."""
    import yaml

    from facebench.limits import load_yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--option {shorten(item)} is not of the form key=value.")
        try:
            options[key.strip()] = load_yaml(value, where=f"--option {key.strip()}") if value else ""
        except yaml.YAMLError:  # not YAML (a Windows path): the value as written
            options[key.strip()] = value
    return options


def _cmd_report(args) -> int:
    from facebench.reports.bias_report import write_protocol_report

    print(f"report:  {write_protocol_report(args.folder, real_faces=args.show_real_faces)}")
    return 0


def _cmd_sweep(args) -> int:
    from facebench.sweep.runner import cli_main

    return cli_main(args)


def _cmd_leaderboard(args) -> int:
    from facebench.reports.leaderboard import cli_main

    return cli_main(args)


def _cmd_compare(args) -> int:
    from facebench.compare import cli_main

    return cli_main(args)


def _cmd_study_export(args) -> int:
    from facebench.study import DEFAULT_QUESTION, export_study

    if args.pairs is not None and args.pairs < 1:
        raise UserInputError(f"--pairs {args.pairs} must be at least 1.")
    page, key = export_study(args.manifest, args.out, n_pairs=args.pairs, seed=args.seed,
                             question=args.question or DEFAULT_QUESTION, synthetic=args.synthetic,
                             group_attribute=args.group_attribute)
    print(f"page: {page} (send this to the raters)")
    print(f"key:  {key} (keep it: it says which image is which; `facebench study import` needs it)")
    return 0


def _cmd_study_import(args) -> int:
    from facebench.study import import_study

    if args.n_boot < 0:
        raise UserInputError(f"--n-boot {args.n_boot} must be 0 or more.")
    paths = import_study(args.key, args.ratings, args.out, n_boot=args.n_boot, seed=args.seed)
    print(paths["markdown"].read_text(encoding="utf-8"), end="")
    print(f"results: {paths['json']}, {paths['markdown']}, {paths['html']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from facebench.distributed import launched

    rank, world = launched()
    if world > 1 and rank != 0 and args.handler is not _cmd_run:  # under torchrun only `run` trains on every rank
        return 0
    try:
        return args.handler(args)
    except UserInputError as exc:
        print(f"facebench: error: {bounded_message(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("facebench: interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
