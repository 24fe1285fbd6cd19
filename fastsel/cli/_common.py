"""Helpers shared by the CLI commands: error mapping, progress, JSON output."""
from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import traceback
import warnings

import click
import torch
from tqdm import tqdm

from .. import __version__, _backend
from .._runtime import memory_problem
from ..errors import DataError, FastselError, UsageProblem
from ..loop.config import check_device, device_problem
from ..ops._inputs import SEED_MAX


class RegistryChoice(click.Choice):
    """A click.Choice read from a registry when the command line is parsed (so an entry registered
    after import -- a user's selector -- is a valid choice): ``names`` returns the current names."""

    def __init__(self, names, case_sensitive: bool = True):
        self._names = names
        super().__init__(list(names()), case_sensitive)

    @property
    def choices(self):
        return tuple(self._names())

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns; the registry stays the source
        pass


SEED = click.IntRange(0, SEED_MAX)  # torch's CPU generator keeps 32 bits: larger seeds would collide
SEED_HELP = "Random seed, in [0, 2^32 - 1]."


class DataProblem(click.ClickException):
    """A problem with the input data: one line on stderr, exit status 1."""

    exit_code = 1


def _version() -> str:
    """The version line: what runs (torch, whether the extension is loaded in this process, and
    why not), not only what was built."""
    ext = "extension loaded" if _backend.loaded() else f"extension not loaded: {_backend.why_unavailable()}"
    return f"fastsel {__version__} (torch {torch.__version__}, {ext})"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), *range(127, 160)] if c != 9}
_CONTROL.update({0x2028: "\\u2028", 0x2029: "\\u2029"})  # what str.splitlines also breaks at


def require_device(device) -> None:
    """A usage error for a --device that :func:`fastsel.loop.config.check_device` refuses (not cpu or
    cuda[:K]), or cuda without a visible GPU of that index (before any data is read; None means the
    command's default)."""
    if device is None:
        return
    try:
        check_device(device, "--device")
    except DataError as e:
        raise click.UsageError("--" + str(e).split(": ", 1)[1]) from None
    why = device_problem(device)
    if why:
        raise click.UsageError(f"--{why}")


class DeviceType(click.ParamType):
    """--device: cpu, cuda or cuda:K with that GPU visible (:func:`require_device`), checked when the
    command line is parsed, before any work; every --device option shares this one rule."""

    name = "device"

    def convert(self, value, param, ctx):
        require_device(value)
        return value


DEVICE = DeviceType()


class CommaList(click.ParamType):
    """A comma list (``16384,65536``), each entry converted by the click type ``item`` (an IntRange,
    a Choice ...): a tuple of at least one value, none repeated; a bad entry is one usage line."""

    name = "list"

    def __init__(self, item: click.ParamType):
        self.item = item

    def get_metavar(self, param, ctx=None):
        if isinstance(self.item, click.Choice):
            return f"[{'|'.join(map(str, self.item.choices))}][,...]"
        return f"{self.item.name.split()[0].upper()}[,...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        if not all(parts):
            self.fail(f"{value!r} is not a comma list (an empty entry)", param, ctx)
        out = []
        for p in parts:
            try:
                out.append(self.item.convert(p, param, ctx))
            except click.BadParameter as e:
                self.fail(one_line(e.message) + (f" (in {value!r})" if len(parts) > 1 else ""), param, ctx)
        if len(set(out)) != len(out):
            self.fail(f"{value!r} repeats a value", param, ctx)
        return tuple(out)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (a range compares false with nan and lets it in)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


def color_channels(images, name: str, quiet: bool = False):
    """uint8 (N, H, W, C) images with the 1 (gray) or 3 (RGB) channels the extractors take: RGBA drops
    its alpha and gray + alpha keeps its gray, as an image folder's files are read (PIL's convert);
    any other channel count is one line."""
    c = images.shape[-1]
    if c in (1, 3):
        return images
    if c not in (2, 4):
        raise DataError(f"{one_line(name)}: images with {c} channels; fastsel reads 1 (gray), 2 (gray + alpha), "
                        f"3 (RGB) or 4 (RGBA)")
    if not quiet:
        click.echo(f"note: {one_line(name)}: {'RGBA' if c == 4 else 'gray + alpha'} images, alpha channel dropped",
                   err=True)
    return images[..., :c - 1]


def check_memory(nbytes: float, what: str) -> None:
    """A usage error (before any work) when ``what`` needs more than this machine's physical memory."""
    why = memory_problem(nbytes, what)
    if why:
        raise click.UsageError(why)


class ImageSide(click.IntRange):
    """An image side (--size, --image-size): an IntRange whose one RGB uint8 image must fit in memory."""

    def convert(self, value, param, ctx):
        side = super().convert(value, param, ctx)
        why = memory_problem(side * side * 3, f"one {side} x {side} RGB image")
        if why:
            self.fail(why, param, ctx)
        return side


def one_line(s) -> str:
    """``s`` with control characters (a newline or carriage return in a file name) shown as \\xNN
    escapes: a message or a path stays one line and says exactly what it names."""
    return str(s).translate(_CONTROL)


def handle_errors(fn):
    """fastsel's own errors (bad input, unreadable or unwritable files, out of memory) become one
    line -- exit 2 for a command line that cannot work, 1 otherwise; anything else is a bug: its
    traceback is printed with the version, to be reported."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except UsageProblem as e:
            raise click.UsageError(one_line(e)) from None
        except FastselError as e:
            raise DataProblem(one_line(e)) from None
        except MemoryError:
            raise DataProblem("out of memory") from None
        except OSError as e:  # the file system said no (permissions, disk full, a missing folder)
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            raise DataProblem(one_line(f"{e.strerror or e}{where}")) from None
        except Exception:  # noqa: BLE001 -- a bug: keep its traceback
            traceback.print_exc()
            click.echo(f"{_version()}: an unexpected error (above) -- please report it with this traceback", err=True)
            sys.exit(1)
    return wrapper


@contextlib.contextmanager
def clean_warnings():
    """Library warnings (e.g. duplicate rows make the KL entropy -inf) as one clean line each on
    stderr, not Python's "file:line: UserWarning" with a source line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg not in seen:
            seen.add(msg)
            click.echo(f"warning: {msg}", err=True)


def progress_bar(total: int, desc: str, quiet: bool = False):
    """A tqdm bar on stderr that appears only for work lasting over a second."""
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
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(v)
