"""The ``fastsel`` command group; each command lives in its own module."""
import click

from ._common import _version
from .bench import bench
from .curate import curate
from .demo import demo
from .embed import embed
from .fid import fid
from .info import info
from .loop import loop, report
from .metrics import metrics
from .select import select


def _print_version(ctx, param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version())
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version, torch's and whether the C++ extension is loaded, and exit.")
def cli():
    """fastsel: exact, fast entropy-maximising data selection.

    \b
    Examples:
      fastsel demo                                  # make a demo pool, compare selectors
      fastsel select --in feats.npy --n 32768       # greedy (FPS) selection
      fastsel select --in feats.npy --n 4096 --method threshold --alpha 0.9
      fastsel metrics --in train.npy --ref real.npy --json
      fastsel info                                  # what was built vs what runs
      fastsel embed mnist --features inception --n 12000 --out mnist.npy
      fastsel fid mnist generated/ --n 10000
      fastsel loop mnist                            # the self-consuming DDPM loop, with a report
    """


for _cmd in (select, curate, metrics, info, bench, demo, embed, fid, loop, report):
    cli.add_command(_cmd)


def main():
    cli(prog_name="fastsel")
