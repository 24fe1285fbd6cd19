"""Helpers shared by the CLI commands: error mapping, progress, JSON output."""
from __future__ import annotations

import functools
import json
import math
import sys

import click

from ..io import DataError


class DataProblem(click.ClickException):
    """A problem with the input data: one line on stderr, exit status 1."""

    exit_code = 1


def handle_errors(fn):
    """Turn data errors into one clear line (exit 1); usage errors stay click's (exit 2)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (DataError, ValueError) as e:
            raise DataProblem(str(e).splitlines()[0]) from None
        except MemoryError:
            raise DataProblem("out of memory") from None
        except RuntimeError as e:  # kernel-side checks (TORCH_CHECK) arrive as RuntimeError
            raise DataProblem(str(e).splitlines()[0]) from None
    return wrapper


def progress_bar(total: int, desc: str, quiet: bool = False):
    """A tqdm bar on stderr that appears only for work lasting over a second."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, file=sys.stderr, delay=1.0, disable=quiet, leave=False,
                unit="pick", dynamic_ncols=True)


def finite_or_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def emit_json(obj) -> None:
    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return finite_or_none(o)
    click.echo(json.dumps(clean(obj), allow_nan=False))


def fmt(v, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(v)
