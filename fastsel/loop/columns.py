"""The per-iteration metric columns, in one list: the loop's metrics.csv (run.py), the report's
metrics table, its per-iteration figures and its arm tests (report.py) and the ``fastsel loop``
summary and its arm-vs-none line (cli/loop.py) all read ``COLUMNS``; the report's correlation figures
(Figs. 2b, 2c) and their table read ``CORRELATIONS``. A new metric is one entry here (plus the line in
``Loop.measure`` that computes it): it declares where it is shown, how it is read from a record
and in which figure it is drawn (``FIGURES``; a figure it names that is not there gets a plain one)."""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional


class Column(NamedTuple):
    key: str                     # the record's key
    report: Optional[str]        # the report table's header ({fs}/{ffs}: the feature space); None: not shown
    csv: bool = True             # a metrics.csv column (named by key)
    cli: Optional[str] = None    # the CLI summary's header; None: not shown
    width: int = 9               # CLI: field width ...
    digits: int = 4              # ... and significant digits
    optional: bool = False       # shown only when some record has it (MNIST-family class statistics)
    read: Optional[Callable] = None  # read(record) -> value when it is not record[key]
    figure: Optional[str] = None     # the report figure (file stem) it is drawn in, in COLUMNS order
    axis: Optional[str] = None       # that figure's axis label (default: the report header)
    test: bool = False               # compared arm against none in the report's tests
    cli_vs: Optional[str] = None     # the CLI's "arm vs none" line at the last iteration: its name there
    cli_note: Optional[str] = None   # a note the CLI summary's first line adds when the column is shown

    def value(self, record: dict):
        return self.read(record) if self.read is not None else record.get(self.key)


def _real_share(record: dict):
    return record["shares"][0]  # the records keep every source's share; the real images' comes first


COLUMNS = (
    Column("copy_fraction", "copy fraction (pixels)", cli="copies", width=7, digits=3, figure="memorization",
           axis="copy fraction (pixels; d1 < d2/3)", test=True, cli_vs="copies"),
    Column("copy_fraction_holdout", "held-out real copy fraction (control)", cli="ho-cp", width=6, digits=2),
    Column("gs_norm", "GS / held-out GS ({fs})", cli="GS/ho", width=7, digits=3, figure="memorization",
           axis="GS / held-out real GS ({fs})", test=True, cli_vs="GS/held-out"),
    Column("novelty_real", "novelty vs real: GS to the real images / held-out ({fs})", cli="nov", width=6, digits=3,
           optional=True, figure="novelty", axis="GS to the real images / held-out ({fs})", test=True),
    Column("novelty_real_holdout", "held-out real novelty (control)", cli="ho-nov", width=6, digits=3,
           optional=True),
    Column("copy_abs", "copy fraction, absolute (pixels)", cli="cp-abs", width=6, digits=3, optional=True,
           figure="novelty", axis="copy fraction (pixels; d1 < calibrated distance)", test=True),
    Column("copy_abs_holdout", "held-out real absolute copies (control)", optional=True),
    Column("entropy_samples", "samples' entropy at m ({fs})", cli="s-ent", width=7, digits=4, optional=True,
           figure="novelty", axis="KL entropy of the samples at m rows ({fs})", test=True),
    Column("gs", "GS ({fs})", cli="GS", figure="gs", test=True),
    Column("fid", "FID ({ffs})", cli="FID", figure="fid", test=True),
    Column("entropy", "entropy ({fs})", cli="entropy", width=10, figure="entropy", axis="KL entropy, raw ({fs})",
           test=True),
    Column("entropy_fixed", "entropy at m ({fs})", cli="ent@m", width=9, figure="entropy",
           axis="KL entropy at m rows ({fs})", test=True, cli_vs="entropy@m"),
    Column("mnnd", "MNND ({fs})", cli="MNND", width=8, figure="mnnd_cov"),
    Column("cov_trace", "cov trace ({fs})", figure="mnnd_cov", axis="covariance trace ({fs})"),
    Column("vendi", "Vendi score ({fs}, cosine)", figure="vendi"),
    Column("n_train", None),
    Column("share_real", "real share", cli="real", width=6, digits=3, read=_real_share, test=True),
    Column("class_confidence", "LeNet confidence", cli="conf", width=6, digits=3, optional=True, figure="class",
           axis="mean LeNet confidence", cli_note="conf = mean LeNet confidence of the samples"),
    Column("class_entropy", "label entropy", optional=True, figure="class", axis="entropy of labels"),
)

# the report's per-iteration figures: file stem -> (title, paper figures, what it shows) ({fs}/{ffs} filled)
FIGURES = {
    "memorization": ("Fig. 1-right, memorization measured: share of samples that copy a training image, and GS "
                     "normalised by fresh real data (1 = as novel as real, 0 = copies)",
                     "1-right (measured as copies; not in the paper)",
                     "copy fraction (pixels) and normalised GS ({fs}) per iteration"),
    "novelty": ("Measures whose reference does not change with the arm (docs/analysis.md): samples' distance to "
                "the seed's real images over held-out real's, copies by a calibrated distance, the samples' own "
                "entropy", "(primary endpoint and secondaries; not in the paper)",
                "novelty vs real ({fs}), absolute copy fraction (pixels), samples' entropy at m per iteration"),
    "gs": ("Figs. 1-right, 3-left, 8: generalization score (mean 1-NN distance generated -> training, {fs})",
           "1-right, 3-left, 8", "GS ({fs}) per iteration, one line per run and arm"),
    "fid": ("Figs. 3-middle, 9, 13, 14: FID ({ffs}) of the generated images against the real data",
            "3-middle, 9, 13, 14", "FID ({ffs}) per iteration"),
    "entropy": ("Figs. 2a, 3-right, 10: entropy of the training set ({fs}); right: on subsets of a fixed size m "
                "(comparable across sizes)", "2a, 3-right, 10",
                "training-set KL entropy ({fs}) per iteration, raw and at a fixed subset size"),
    "mnnd_cov": ("Fig. 7: MNND and covariance trace of the training set ({fs})", "7",
                 "MNND and trace of covariance per iteration"),
    "vendi": ("Vendi score of the training set ({fs}, cosine kernel; Friedman & Dieng 2023)", "(not in the paper)",
              "Vendi score ({fs}) per iteration"),
    "class": ("LeNet class statistics of the generated samples (confidence: recognisable digits; label entropy: "
              "mode collapse lowers it)", "(MNIST; not in the paper)",
              "mean max-softmax and predicted-label entropy of the samples"),
}


class Panel(NamedTuple):
    """One panel of a correlation figure: column ``y`` (drawn as log y) against column ``x``, whose axis label
    is that column's ``axis``."""
    x: str        # the x column's key
    y: str        # the y column's key
    y_axis: str   # the y axis label ({fs})
    x_name: str   # how report.md's correlation table names x ...
    y_name: str   # ... and y


# the report's correlation figures: file stem -> (paper figure, title, what it shows ({fs}/{which} filled), panels);
# report.md's correlation table has one row per panel, in this order
CORRELATIONS = {
    "entropy_vs_gs": ("2b", "Fig. 2b: training-set entropy vs log GS ({fs}; {which}; one point per run, arm and "
                            "iteration)", "entropy vs log GS over {which}",
                      (Panel("entropy", "gs", "log GS ({fs})", "raw KL entropy", "log GS"),
                       Panel("entropy_fixed", "gs", "log GS ({fs})", "KL entropy at m", "log GS"),
                       Panel("entropy_fixed", "gs_norm", "log GS / held-out GS", "KL entropy at m", "log GS/held-out"))),
    "variance_vs_gs": ("2c", "Fig. 2c: training-set variance (covariance trace) vs log GS ({fs}; {which})",
                       "variance vs log GS over {which}",
                       (Panel("cov_trace", "gs", "log GS ({fs})", "covariance trace", "log GS"),
                        Panel("cov_trace", "gs_norm", "log GS / held-out GS", "covariance trace", "log GS/held-out"))),
}


def column(key: str) -> Column:
    """The column of a record key."""
    for c in COLUMNS:
        if c.key == key:
            return c
    raise KeyError(f"no metric column {key!r}")


def figures() -> list:
    """(stem, [columns], (title, paper, what)) for every figure some column names, in COLUMNS order."""
    out = {}
    for c in COLUMNS:
        if c.figure is not None:
            out.setdefault(c.figure, []).append(c)
    return [(stem, cols, FIGURES.get(stem, (", ".join(c.axis or c.report or c.key for c in cols) + " per iteration",
                                            "(not in the paper)", ", ".join(c.key for c in cols) + " per iteration")))
            for stem, cols in out.items()]


def shown(records, where: str) -> list:
    """The columns a table shows (where: "csv", "report" or "cli"): optional ones only when some
    record holds them."""
    have = lambda c: not c.optional or any(c.key in r for r in records)  # noqa: E731
    if where == "csv":
        return [c for c in COLUMNS if c.csv and have(c)]
    return [c for c in COLUMNS if getattr(c, where) is not None and have(c)]
