"""The onnx-sparsify command: a thin layer over onnx_sparsify.sparsify().

Exit codes:
  0  the model was rewritten (and, with --check, agrees with the original)
  1  --check found the rewritten model disagreeing with the reference
  2  usage error (bad flag or value, or --check lacking an input shape)
  3  the input cannot be used: missing, unreadable, not ONNX, unsupported opset, unsafe external data
  4  the output cannot be written
  5  no Conv was rewritten; the output was written unchanged (apart from its IR version)
"""

from __future__ import annotations

import argparse
import logging
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


def _input_shape(text: str) -> tuple[str, list[int]]:
    from .check import parse_input_shape

    try:
        return parse_input_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnx-sparsify",
        description="Rewrite an ONNX model's sparse Conv layers to SparseConv, which the onnx-sparsify "
        "ONNX Runtime plugin runs faster than dense Conv.",
        epilog="Exit codes: 0 ok, 1 check failed, 2 usage, 3 bad input, 4 cannot write, 5 nothing rewritten.",
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
        "(layers need known input shapes: see --input-shape)",
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
        help="fix an input's shape for --check and --autotune, e.g. x:1x3x224x224 (repeatable)",
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

    def start(total: int):
        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("rewriting Convs", total=total)

        def tick() -> None:
            bar.advance(task)
            if bar.tasks[0].completed >= total:
                bar.stop()

        if total == 0:
            bar.stop()
        return tick

    return start


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from . import rewrite
    from .check import CheckError, check
    from .model_io import ModelLoadError, ModelSaveError, check_opsets, load_model, save_model
    from .pruning import prune_convs
    from .report import render

    console = Console(stderr=True, quiet=args.quiet)
    try:
        loaded = load_model(args.input)
        check_opsets(loaded.model)
    except ModelLoadError as e:
        log.error("%s", e)
        return EXIT_INPUT
    original = loaded.model
    reference = original
    if args.prune is not None:
        reference, _ = prune_convs(original, args.prune, args.keep)
    progress = _progress_bar(not args.quiet and sys.stderr.isatty())
    model, report = rewrite.sparsify(
        reference,
        min_sparsity=args.min_sparsity,
        keep=args.keep,
        autotune=args.autotune,
        input_shapes=dict(args.input_shape),
        provider=args.provider,
        progress=progress,
    )
    if args.prune is not None:
        report.pruned_to = args.prune
    try:
        save_model(model, args.output, external_data=loaded.external_data or None)
    except ModelSaveError as e:
        log.error("%s", e)
        return EXIT_OUTPUT

    status = EXIT_OK
    if args.check and report.rewritten:
        try:
            report.check = check(
                reference,
                model,
                input_shapes=dict(args.input_shape),
                original=original if args.prune is not None else None,
            )
        except CheckError as e:
            log.error("%s", e)
            return EXIT_USAGE
        if not report.check.passed:
            status = EXIT_CHECK_FAILED
    render(report, console)
    if args.report_json:
        try:
            args.report_json.write_text(report.to_json())
        except OSError as e:
            log.error("%s: cannot write the report (%s)", args.report_json, e.strerror)
            return EXIT_OUTPUT
    if status == EXIT_CHECK_FAILED:
        c = report.check
        log.error(
            "check failed: output '%s' differs by relative L2 %.3g (tolerance %.3g)",
            c.worst_output,
            c.worst_error,
            c.tolerance,
        )
        return status
    if not report.rewritten:
        log.warning("no Conv was rewritten (%d found); %s written unchanged", report.convs, args.output)
        return EXIT_NOTHING_REWRITTEN
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="onnx-sparsify: %(message)s")
    logging.getLogger("onnx_sparsify").setLevel(level)
    try:
        return run(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # one clear line; the traceback only with -v
        if args.verbose:
            raise
        log.error("%s: %s (run with -v for details)", type(e).__name__, e)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
