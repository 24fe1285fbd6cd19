"""The per-iteration metric columns, in one list: the loop's metrics.csv (run.py), the report's
metrics table (report.py) and the ``fastsel loop`` summary (cli/loop.py) all read ``COLUMNS``.
A new metric is one entry here (plus the line in ``Loop.measure`` that computes it)."""
from __future__ import annotations

from typing import NamedTuple, Optional


class Column(NamedTuple):
    key: str                     # the record's key ("share_real": the real images' share)
    report: Optional[str]        # the report table's header ({fs}/{ffs}: the feature space); None: not shown
    csv: bool = True             # a metrics.csv column (named by key)
    cli: Optional[str] = None    # the CLI summary's header; None: not shown
    width: int = 9               # CLI: field width ...
    digits: int = 4              # ... and significant digits
    optional: bool = False       # shown only when some record has it (MNIST-family class statistics)

    def value(self, record: dict):
        return record["shares"][0] if self.key == "share_real" else record.get(self.key)


COLUMNS = (
    Column("copy_fraction", "copy fraction (pixels)", cli="copies", width=7, digits=3),
    Column("copy_fraction_holdout", "held-out real copy fraction (control)", cli="ho-cp", width=6, digits=2),
    Column("gs_norm", "GS / held-out GS ({fs})", cli="GS/ho", width=7, digits=3),
    Column("gs", "GS ({fs})", cli="GS"),
    Column("fid", "FID ({ffs})", cli="FID"),
    Column("entropy", "entropy ({fs})", cli="entropy", width=10),
    Column("entropy_fixed", "entropy at m ({fs})", cli="ent@m", width=9),
    Column("mnnd", "MNND ({fs})", cli="MNND", width=8),
    Column("cov_trace", "cov trace ({fs})"),
    Column("vendi", "Vendi score ({fs}, cosine)"),
    Column("n_train", None),
    Column("share_real", "real share", cli="real", width=6, digits=3),
    Column("class_confidence", "LeNet confidence", cli="conf", width=6, digits=3, optional=True),
    Column("class_entropy", "label entropy", optional=True),
)


def shown(records, where: str) -> list:
    """The columns a table shows (where: "csv", "report" or "cli"): optional ones only when some
    record holds them."""
    have = lambda c: not c.optional or any(c.key in r for r in records)  # noqa: E731
    if where == "csv":
        return [c for c in COLUMNS if c.csv and have(c)]
    return [c for c in COLUMNS if getattr(c, where) is not None and have(c)]
