"""The onnx-sparsify command: a thin layer over onnx_sparsify.sparsify().

Exit codes:
  0  the model was rewritten (and, with --check, agrees with the original)
  1  --check found the rewritten model disagreeing with the reference
  2  usage error: a bad flag or value, -o naming the input (or its external data), an
     --input-shape naming no input or of the wrong rank or sizes, --check lacking an input size
     or needing more than 2 GiB of random data for one input (check.MAX_FEED_BYTES)
  3  the input cannot be used: missing, unreadable, not ONNX, unsupported opset, unsafe external
     data, or malformed where ONNX Runtime would refuse it too (a graph with a cycle included;
     the message names the node)
  4  the output (or the JSON report) cannot be written
  5  no Conv was rewritten; the output was written unchanged (apart from its IR version), or
     only pruned with --prune

The output is staged in a temporary folder beside it and moved into place only on exit 0 or 5:
on any other exit nothing is left at the output path, a file already there is untouched, and the
error line says the output was not written. Errors are one line (a traceback only with -v).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_NOTHING_REWRITTEN = range(6)

log = logging.getLogger("onnx_sparsify")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not within [0, 1]")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _input_shape(text: str) -> tuple[str, list[int]]:
    from .check import parse_input_shape

    try:
        return parse_input_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="onnx-sparsify",
        description="Rewrite an ONNX model's sparse Conv layers to SparseConv, which the onnx-sparsify "
        "ONNX Runtime plugin runs faster than dense Conv.",
        epilog="Exit codes: 0 ok, 1 check failed, 2 usage, 3 bad input, 4 cannot write, 5 nothing rewritten "
        "(the output is written only on 0 and 5).",
    )
    parser.add_argument("input", type=Path, help="the ONNX model to rewrite")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the rewritten model")
    parser.add_argument(
        "--min-sparsity",
        type=_fraction,
        metavar="S",
        help="rewrite a Conv only if at least this fraction of its weights is zero "
        "(default: the profitability decision; 0 rewrites every eligible Conv)",
    )
    parser.add_argument(
        "--keep", action="append", default=[], metavar="NAME", help="leave this Conv node dense (repeatable)"
    )
    parser.add_argument(
        "--prune",
        type=_fraction,
        metavar="S",
        help="first magnitude-prune each eligible Conv weight to this sparsity (changes accuracy)",
    )
    parser.add_argument(
        "--provider",
        choices=("cpu", "cuda"),
        default="cpu",
        help="the execution provider the model will run on; the decision is made for it",
    )
    parser.add_argument(
        "--autotune",
        action="store_true",
        help="time both variants of each layer on this machine and keep the faster "
        "(layers need known input shapes: see --input-shape; others use the cost model, with a warning)",
    )
    parser.add_argument(
        "--no-measure",
        dest="measure",
        action="store_false",
        help="trust the cost model: skip the end-to-end check that times the original and the rewritten "
        "model here and keeps only what is measured faster",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE",
        help="decide with the rates in FILE (written by onnx-sparsify-calibrate on the deployment machine) "
        "instead of this machine's; the end-to-end check runs only when FILE is from this CPU",
    )
    parser.add_argument(
        "--sample-inputs",
        type=Path,
        metavar="NPZ",
        help="time the end-to-end check on these inputs (a NumPy .npz archive, one array per input name) "
        "instead of random ones: for inputs whose values choose the work (an If's condition, a sample rate)",
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        default=1,
        metavar="N",
        help="intra-op threads the model will run with, for calibration, --autotune and the end-to-end check "
        "(default 1)",
    )
    parser.add_argument(
        "--check", action="store_true", help="run original and rewritten models on random inputs and compare"
    )
    parser.add_argument(
        "--input-shape",
        type=_input_shape,
        action="append",
        default=[],
        metavar="NAME:DIMS",
        help="fix an input's shape for the cost model, the end-to-end check, --check and --autotune, "
        "e.g. x:1x3x224x224 (repeatable)",
    )
    parser.add_argument("--report-json", type=Path, metavar="PATH", help="also write the report as JSON")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log every decision; tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"onnx-sparsify {__version__}")
    return parser


def _progress_bar(enabled: bool):
    """A transient rich progress bar over the Convs, when stderr is a terminal."""
    if not enabled:
        return None
    from rich.progress import Progress

    def start(total: int, description: str = "rewriting Convs"):
        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(description, total=total)

        def tick() -> None:
            bar.advance(task)
            if bar.tasks[0].completed >= total:
                bar.stop()

        if total == 0:
            bar.stop()
        return tick

    return start


class _Failure(Exception):
    """Ends the run with `code` and one line; main() adds that the output was not written."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once resolved, or hard links."""
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except (OSError, RuntimeError):  # a missing file; a symlink loop
        return False


def _refuse_input_as_output(args: argparse.Namespace) -> None:
    if _same_file(args.output, args.input):
        raise _Failure(EXIT_USAGE, f"-o {args.output}: that is the input model; refusing to overwrite it")


def _refuse_missing_output_folder(args: argparse.Namespace) -> None:
    """-o and --report-json into a folder that does not exist (or naming a folder): exit 4 before
    any work, not after the rewrite and its measurement."""
    for flag, path in (("-o", args.output), ("--report-json", args.report_json)):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise _Failure(EXIT_OUTPUT, f"{flag} {path}: folder {path.parent} does not exist")
        if path.is_dir():
            raise _Failure(EXIT_OUTPUT, f"{flag} {path}: is a folder")


def _refuse_external_data_as_output(args: argparse.Namespace, external_files: frozenset[Path]) -> None:
    """-o must not overwrite the input's external data, nor write its own over it."""
    from .model_io import external_data_name

    for target in (args.output, args.output.parent / external_data_name(args.output)):
        if any(_same_file(target, f) for f in external_files):
            raise _Failure(EXIT_USAGE, f"-o {args.output}: would overwrite {target.name}, the input's external data")


def _input_shapes(args: argparse.Namespace, model) -> dict[str, list[int]]:
    """The --input-shape values, checked against the model's inputs."""
    from .check import validate_input_shapes

    shapes: dict[str, list[int]] = {}
    for name, dims in args.input_shape:
        flag = f"--input-shape {name}:{'x'.join(map(str, dims))}"
        if name in shapes:
            raise _Failure(EXIT_USAGE, f"{flag}: input '{name}' is given twice")
        try:
            validate_input_shapes(model, {name: dims})
        except ValueError as e:
            raise _Failure(EXIT_USAGE, f"{flag}: {e}") from None
        shapes[name] = dims
    return shapes


def _sample_inputs(args: argparse.Namespace, model):
    """The arrays in --sample-inputs (None without it), checked against the model's inputs."""
    import numpy as np

    from .check import validate_input_shapes

    if args.sample_inputs is None:
        return None
    flag = f"--sample-inputs {args.sample_inputs}"
    try:
        with np.load(args.sample_inputs, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except OSError as e:
        raise _Failure(EXIT_USAGE, f"{flag}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise _Failure(EXIT_USAGE, f"{flag}: not a NumPy .npz archive of arrays ({e})") from None
    try:
        validate_input_shapes(model, {name: list(a.shape) for name, a in arrays.items()})
    except ValueError as e:
        raise _Failure(EXIT_USAGE, f"{flag}: {e}") from None
    return arrays


def _calibration(args: argparse.Namespace):
    """The rates in --calibration's file, or None (this machine's)."""
    from . import calibration

    if args.calibration is None:
        return None
    try:
        return calibration.load(args.calibration)
    except OSError as e:
        raise _Failure(EXIT_USAGE, f"--calibration {args.calibration}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise _Failure(EXIT_USAGE, f"--calibration {e}") from None


def _rewrite(args: argparse.Namespace, loaded, input_shapes: dict[str, list[int]]):
    """(reference, rewritten model, report, whether --prune pruned any weight): the reference is
    the pruned model with --prune, else the input."""
    from . import rewrite
    from .model_io import ModelLoadError
    from .pruning import prune_convs

    try:
        reference, achieved = loaded.model, {}
        if args.prune is not None:
            reference, achieved = prune_convs(loaded.model, args.prune, args.keep)
        model, report = rewrite.sparsify(
            reference,
            min_sparsity=args.min_sparsity,
            keep=args.keep,
            autotune=args.autotune,
            input_shapes=input_shapes,
            provider=args.provider,
            progress=_progress_bar(not args.quiet and sys.stderr.isatty()),
            calibration=_calibration(args),
            sample_inputs=_sample_inputs(args, loaded.model),
            measure=args.measure,
            threads=args.threads,
            timed=True,  # with --min-sparsity, the report still gives the end-to-end time (not with --no-measure)
        )
    except ModelLoadError as e:
        raise _Failure(EXIT_INPUT, str(e)) from None
    if args.prune is not None:
        report.pruned_to = args.prune
    return reference, model, report, bool(achieved)


def _check_can_run(model, input_shapes: dict[str, list[int]]) -> None:
    """--check needs every input's size: a usage error before any work, not after."""
    from .check import CheckError, random_feeds

    try:
        random_feeds(model, input_shapes)
    except CheckError as e:
        raise _Failure(EXIT_USAGE, f"--check: {e}") from None


def _check(reference, staged: Path, original, input_shapes: dict[str, list[int]]):
    """--check against the staged output file, read back as ONNX Runtime will read it."""
    from .check import CheckError, check

    try:
        return check(reference, staged, input_shapes=input_shapes, original=original)
    except CheckError as e:
        raise _Failure(EXIT_USAGE, str(e)) from None


def _report(args: argparse.Namespace, report, console) -> None:
    """Prints the report, writes its JSON, and fails the run when --check failed."""
    from .report import render

    render(report, console)
    if args.report_json:
        try:
            args.report_json.write_text(report.to_json())
        except OSError as e:
            raise _Failure(EXIT_OUTPUT, f"{args.report_json}: cannot write the report ({e.strerror})") from None
    if report.check is not None and not report.check.passed:
        c = report.check
        raise _Failure(
            EXIT_CHECK_FAILED,
            f"check failed: output '{c.worst_output}' differs by relative L2 {c.worst_error:.3g} "
            f"(tolerance {c.tolerance:.3g})",
        )


def run(args: argparse.Namespace) -> int:
    """The whole command; raises _Failure (and leaves nothing at the output path) for exit codes
    1 to 4."""
    from rich.console import Console

    from .model_io import ModelLoadError, ModelSaveError, StagedModel, load_model

    console = Console(stderr=True, quiet=args.quiet)
    _refuse_input_as_output(args)
    _refuse_missing_output_folder(args)
    try:
        loaded = load_model(args.input)  # sparsify() checks the opsets
    except ModelLoadError as e:
        raise _Failure(EXIT_INPUT, str(e)) from None
    _refuse_external_data_as_output(args, loaded.external_files)
    input_shapes = _input_shapes(args, loaded.model)
    if args.check:
        _check_can_run(loaded.model, input_shapes)
    reference, model, report, pruned = _rewrite(args, loaded, input_shapes)
    try:
        with StagedModel(model, args.output, external_data=loaded.external_data or None) as staged:
            if args.check:  # also when nothing was rewritten: the file written is what --check vouches for
                original = loaded.model if args.prune is not None else None
                report.check = _check(reference, staged.path, original, input_shapes)
            _report(args, report, console)
            staged.commit()
    except ModelSaveError as e:
        raise _Failure(EXIT_OUTPUT, str(e)) from None
    if not report.rewritten:
        why = f" ({report.end_to_end_skipped})" if report.end_to_end_skipped else ""
        written = "pruned (--prune), with no SparseConv" if pruned else "unchanged"
        log.warning("no Conv was rewritten (%d found)%s; %s written %s", report.convs, why, args.output, written)
        return EXIT_NOTHING_REWRITTEN
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="onnx-sparsify: %(message)s")
    logging.getLogger("onnx_sparsify").setLevel(level)
    try:
        return run(args)
    except _Failure as e:
        log.error("%s; %s not written", e, args.output)
        return e.code
    except KeyboardInterrupt:
        log.error("interrupted; %s not written", args.output)
        return 130
    except Exception as e:  # one clear line; the traceback only with -v
        if args.verbose:
            raise
        log.error("%s: %s (run with -v for details); %s not written", type(e).__name__, e, args.output)
        return EXIT_INPUT


def calibrate_main(argv: Sequence[str] | None = None) -> int:
    """onnx-sparsify-calibrate: measure this machine's rates for the cost model (seconds), cache
    them for this machine, and with -o write them to a file for onnx-sparsify --calibration on
    another machine. Exit codes: 0 ok, 2 usage, 4 cannot write the file."""
    from . import calibration

    parser = _Parser(
        prog="onnx-sparsify-calibrate",
        description="Measure this machine's dense Conv and SparseConv rates for onnx-sparsify's cost model.",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="also write the rates to FILE")
    parser.add_argument("--threads", type=_positive, default=1, metavar="N", help="intra-op threads (default 1)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.INFO, format="onnx-sparsify-calibrate: %(message)s"
    )
    log.setLevel(logging.ERROR if args.quiet else logging.INFO)
    bar = _progress_bar(not args.quiet and sys.stderr.isatty())
    rates = calibration.calibrate(
        args.threads, bar(1 + 2 * len(calibration.PROBES), "calibrating") if bar else lambda: None
    )
    targets = [calibration.cache_path(args.threads)] + ([args.output] if args.output else [])
    for target in targets:
        try:
            calibration.save(rates, target)
        except OSError as e:
            log.error("%s: cannot write the calibration (%s)", target, e.strerror)
            return EXIT_OUTPUT
        log.info("wrote %s", target)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
